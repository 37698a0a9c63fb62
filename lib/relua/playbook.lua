--- relua.playbook: recovery playbooks. A playbook is data (a Lua table, or an entry of the
-- YAML template teams keep in recovery/playbooks/*.yaml): the symptom it answers, detection
-- checks that confirm it, the root cause, a fix, verify checks, and the phase to resume at.
-- This module loads and checks playbooks (with file:line for every problem), finds them on
-- the search path, matches a ticket's recorded failure against their symptoms and runs
-- checks with timeouts. The commands (diagnose, recover, playbook ...) are in
-- relua.playbook.commands; the format is documented in doc/playbooks.md.
local fsc = require "relua.core.fs"

local M = {}

--- Seconds a detection or verify check may take before its process group is killed.
M.TIMEOUT = 30
--- What a failure record keeps of a phase's output: the last lines, and at most this many bytes.
M.TAIL_LINES, M.TAIL_BYTES = 200, 64 * 1024

-- ------------------------------------------------------------------ small helpers

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function split_lines(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function pattern_error(p)
  local ok, err = pcall(string.find, "", p)
  if ok then return nil end
  return (tostring(err):gsub("^.-:%d+: ", ""))
end

-- ------------------------------------------------------------------ where keys are

-- Finds the line of `key` in lines[from..to]: `key:` (YAML, maybe after "- ") or `key =`
-- (Lua). Returns the first line number found, or nil.
local function key_line(lines, key, from, to, lua)
  local pat = lua and ("^%s*%[?[\"']?" .. key .. "[\"']?%]?%s*=")
    or ("^[%s%-]*[\"']?" .. key .. "[\"']?%s*:")
  for i = from, math.min(to, #lines) do
    if lines[i]:find(pat) then return i end
  end
end

-- ------------------------------------------------------------------ the schema

-- Each checker returns a normalized value, or nil and what is wrong.
local FIELDS = {
  id = true, title = true, symptom = true, detect = true, detection = true, root_cause = true,
  fix = true, verify = true, resume = true, tags = true, services = true, timeout = true,
  notes = true,
}
M.FIELDS = FIELDS

local ID = "^[%w][%w%._%-]*$"

-- A text matcher: "plain substring", { match = "lua pattern" }, or function(text) -> bool.
local function matcher(v, what)
  if type(v) == "string" then return { plain = v } end
  if type(v) == "function" then return { fn = v } end
  if type(v) == "table" and type(v.match) == "string" then
    for k in pairs(v) do
      if k ~= "match" then return nil, string.format("%s: unknown field %s (a pattern is { match = \"...\" })", what, tostring(k)) end
    end
    local perr = pattern_error(v.match)
    if perr then return nil, string.format("%s: the pattern %q does not compile: %s", what, v.match, perr) end
    return { pattern = v.match }
  end
  return nil, string.format("%s must be a string (plain text), { match = \"lua pattern\" } or a function, not a %s",
    what, type(v) == "table" and "table without match" or type(v))
end

-- A list of matchers (any of them): a single one or a list.
local function matchers(v, what)
  if type(v) == "table" and v.match == nil and is_list(v) and #v > 0 then
    local out = {}
    for i, x in ipairs(v) do
      local m, err = matcher(x, string.format("%s[%d]", what, i))
      if not m then return nil, err end
      out[i] = m
    end
    return out
  end
  local m, err = matcher(v, what)
  if not m then return nil, err end
  return { m }
end

local function test(m, text)
  text = text or ""
  if m.plain then return text:find(m.plain, 1, true) ~= nil end
  if m.pattern then return text:find(m.pattern) ~= nil end
  local ok, r = pcall(m.fn, text)
  return ok and r and true or false
end

local function test_any(list, text)
  for _, m in ipairs(list) do
    if test(m, text) then return true end
  end
  return false
end

local function describe_matcher(m)
  if m.plain then return string.format("%q", m.plain) end
  if m.pattern then return string.format("pattern %q", m.pattern) end
  return "a function"
end

-- The error lines a free-text symptom quotes: text in `backquotes` or "double quotes",
-- and lines that begin like an error line ("[ERROR] ...", "ERROR ...", "Error ...",
-- "error: ...", "fatal: ...", "✗ ...", "[SERVICE] ...", "> quoted").
function M.quoted_lines(text)
  local out, seen = {}, {}
  local function add(s)
    s = trim(s)
    if #s >= 4 and not seen[s] then seen[s] = true; out[#out + 1] = s end
  end
  for q in text:gmatch("`([^`\n]+)`") do add(q) end
  for q in text:gmatch('"([^"\n]+)"') do add(q) end
  for line in text:gmatch("[^\n]+") do
    local t = trim(line)
    if t:sub(1, 1) == ">" then add(t:sub(2))
    elseif t:find("^%[%u[%u%d_%-]*%]") or t:find("^[Ee][Rr][Rr][Oo][Rr]") or t:find("^[Ff][Aa][Tt][Aa][Ll]:")
        or t:find("^\u{2717}") or t:find("^\u{2718}") then
      add(t)
    end
  end
  return out
end

-- Does a quoted line appear in text? Placeholders ("...", "<name>") stand for anything:
-- the pieces around them must appear in order.
local function quote_found(q, text)
  local pieces = {}
  for piece in (q:gsub("%.%.%.", "\0"):gsub("<[^<>\n]*>", "\0") .. "\0"):gmatch("([^%z]*)%z") do
    piece = trim(piece)
    if piece ~= "" then pieces[#pieces + 1] = piece end
  end
  if #pieces == 0 then return false end
  local pos = 1
  for _, piece in ipairs(pieces) do
    local s, e = text:find(piece, pos, true)
    if not s then return false end
    pos = e + 1
  end
  return true
end

local SYMPTOM_FIELDS = { phase = true, rc = true, output = true, message = true, code = true, text = true }

local function check_symptom(v)
  if type(v) == "string" then
    local quotes = M.quoted_lines(v)
    return { text = v, quotes = quotes }
  end
  if type(v) ~= "table" then return nil, "symptom must be a table ({ phase =, rc =, output =, message =, code = }) or free text, not a " .. type(v) end
  local s = {}
  for k, x in pairs(v) do
    if not SYMPTOM_FIELDS[k] then
      return nil, string.format("symptom: unknown field %s (known: code, message, output, phase, rc, text)", tostring(k))
    end
    if k == "phase" or k == "code" then
      local list = type(x) == "table" and x or { x }
      for _, n in ipairs(list) do
        if type(n) ~= "string" then return nil, string.format("symptom.%s must be a name or a list of names, not a %s", k, type(n)) end
      end
      s[k] = list
    elseif k == "rc" then
      local list = type(x) == "table" and x or { x }
      for _, n in ipairs(list) do
        if math.type(n) ~= "integer" then return nil, "symptom.rc must be an integer or a list of integers, not a " .. (math.type(n) or type(n)) end
      end
      s.rc = list
    elseif k == "text" then
      if type(x) ~= "string" then return nil, "symptom.text must be a string, not a " .. type(x) end
      s.text, s.quotes = x, M.quoted_lines(x)
    else
      local m, err = matchers(x, "symptom." .. k)
      if not m then return nil, err end
      s[k] = m
    end
  end
  return s
end

local CHECK_FIELDS = { run = true, command = true, expect = true, timeout = true, name = true, check = true, quick = true }
local EXPECT_FIELDS = { code = true, output = true }

local function check_expect(v, what)
  if v == nil then return { code = 0 } end
  if type(v) == "function" then return { fn = v } end
  if math.type(v) == "integer" then return { code = v } end
  if type(v) == "string" then return { output = { { plain = v } } } end
  if type(v) ~= "table" then return nil, what .. ".expect must be an exit code, an output text, a table or a function, not a " .. type(v) end
  local e = {}
  for k, x in pairs(v) do
    if not EXPECT_FIELDS[k] then return nil, string.format("%s.expect: unknown field %s (known: code, output)", what, tostring(k)) end
    if k == "code" then
      if math.type(x) ~= "integer" then return nil, what .. ".expect.code must be an integer" end
      e.code = x
    else
      local m, err = matchers(x, what .. ".expect.output")
      if not m then return nil, err end
      e.output = m
    end
  end
  return e
end

-- A check: "command" (exit 0), function(ctx) -> truthy, or { run|command = "...", expect =, timeout =, name = }.
local function check_check(v, what)
  if type(v) == "string" then return { run = v, expect = { code = 0 } } end
  if type(v) == "function" then return { fn = v } end
  if type(v) ~= "table" then return nil, what .. " must be a command, a function or a table { run = ..., expect = ... }, not a " .. type(v) end
  for k in pairs(v) do
    if not CHECK_FIELDS[k] then
      return nil, string.format("%s: unknown field %s (known: run, command, check, expect, timeout, name, quick)", what, tostring(k))
    end
  end
  local c = { name = v.name }
  if v.name ~= nil and type(v.name) ~= "string" then return nil, what .. ".name must be a string" end
  local run = v.run or v.command
  if v.check ~= nil then
    if type(v.check) ~= "function" then return nil, what .. ".check must be a function" end
    c.fn = v.check
  elseif type(run) == "string" then c.run = run
  elseif type(run) == "function" then c.fn = run
  else
    return nil, what .. (run == nil and " has no command (run = \"...\")" or ".run must be a command line (string) or a function, not a " .. type(run))
  end
  if v.timeout ~= nil and (type(v.timeout) ~= "number" or v.timeout <= 0) then return nil, what .. ".timeout must be a positive number of seconds" end
  c.timeout = v.timeout
  if v.quick ~= nil then
    if type(v.quick) ~= "boolean" then return nil, what .. ".quick must be true or false, not a " .. type(v.quick) end
    if v.quick and not c.fn then
      return nil, what .. ".quick is for a Lua check (check = function) that reads only the ticket: a command is never quick"
    end
    c.quick = v.quick
  end
  local e, err = check_expect(v.expect, what)
  if not e then return nil, err end
  c.expect = e
  return c
end

local function check_checks(v, what)
  if type(v) == "table" and is_list(v) and #v > 0 then
    local out = {}
    for i, x in ipairs(v) do
      local c, err = check_check(x, string.format("%s[%d]", what, i))
      if not c then return nil, err end
      out[i] = c
    end
    return out
  end
  if type(v) == "table" and next(v) == nil then return {} end
  local c, err = check_check(v, what)
  if not c then return nil, err end
  return { c }
end

local FIX_FIELDS = { run = true, adhoc = true, bootstrap_script = true, bootstrap_change = true, describe = true }

local function check_fix(v)
  if type(v) == "function" then return { run = v } end
  if type(v) == "string" then return { run = { v } } end
  if type(v) ~= "table" then
    return nil, "fix must be a function or a table { run =, adhoc =, bootstrap_script =, bootstrap_change = }, not a " .. type(v)
  end
  local f = {}
  for k, x in pairs(v) do
    if not FIX_FIELDS[k] then
      return nil, string.format("fix: unknown field %s (known: run, adhoc, describe, bootstrap_script, bootstrap_change)", tostring(k))
    end
    if k == "run" then
      if type(x) == "function" then f.run = x
      elseif type(x) == "string" then f.run = { x }
      elseif type(x) == "table" and is_list(x) and #x > 0 then
        for i, c in ipairs(x) do
          if type(c) ~= "string" then return nil, string.format("fix.run[%d] must be a command line (string)", i) end
        end
        f.run = x
      else
        return nil, "fix.run must be a command line, a list of them, or a function"
      end
    elseif k == "describe" then
      if type(x) ~= "function" and type(x) ~= "string" then return nil, "fix.describe must be a string or a function(ctx)" end
      f.describe = x
    else
      if type(x) ~= "string" then return nil, string.format("fix.%s must be a string, not a %s", k, type(x)) end
      f[k] = x
    end
  end
  return f
end

local function check_strings(v, what)
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" or not is_list(v) then return nil, what .. " must be a list of strings" end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then return nil, string.format("%s[%d] must be a string, not a %s", what, i, type(x)) end
  end
  return v
end

-- Checks one raw playbook table; returns the playbook or nil, problem, key (for its line).
local function normalize(raw)
  if type(raw) ~= "table" then return nil, "a playbook must be a table, not a " .. type(raw) end
  local keys = {}
  for k in pairs(raw) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if not FIELDS[k] then
      return nil, string.format("unknown field %s (known: id, title, symptom, detect, root_cause, fix, verify, resume, services, tags, timeout)", k), k
    end
  end
  if raw.id == nil then return nil, "missing id", nil end
  if type(raw.id) ~= "string" then return nil, "id must be a string, not a " .. type(raw.id), "id" end
  if not raw.id:find(ID) or #raw.id > 100 then
    return nil, string.format("invalid id %q (use letters, digits, . _ -, e.g. release-verify-race)", raw.id), "id"
  end
  local pb = { id = raw.id, tags = {}, services = {}, detect = {}, verify = {} }
  for _, k in ipairs({ "title", "root_cause", "notes" }) do
    if raw[k] ~= nil and type(raw[k]) ~= "string" then return nil, k .. " must be a string, not a " .. type(raw[k]), k end
    pb[k] = raw[k]
  end
  if raw.symptom == nil then return nil, "missing symptom (what the operator sees)", "id" end
  local v, err = check_symptom(raw.symptom)
  if not v then return nil, err, "symptom" end
  pb.symptom = v
  if raw.detect ~= nil and raw.detection ~= nil then return nil, "give detect or detection, not both", "detection" end
  local dkey = raw.detect ~= nil and "detect" or "detection"
  if raw[dkey] ~= nil then
    v, err = check_checks(raw[dkey], dkey)
    if not v then return nil, err, dkey end
    pb.detect = v
  end
  if raw.verify ~= nil then
    v, err = check_checks(raw.verify, "verify")
    if not v then return nil, err, "verify" end
    pb.verify = v
  end
  if raw.fix ~= nil then
    v, err = check_fix(raw.fix)
    if not v then return nil, err, "fix" end
    pb.fix = v
  else
    pb.fix = {}
  end
  if raw.resume ~= nil then
    if raw.resume ~= false and (type(raw.resume) ~= "string" or raw.resume == "") then
      return nil, "resume must be a phase name (or false: do not resume)", "resume"
    end
    pb.resume = raw.resume
  end
  for _, k in ipairs({ "tags", "services" }) do
    if raw[k] ~= nil then
      v, err = check_strings(raw[k], k)
      if not v then return nil, err, k end
      pb[k] = v
    end
  end
  if raw.timeout ~= nil then
    if type(raw.timeout) ~= "number" or raw.timeout <= 0 then return nil, "timeout must be a positive number of seconds", "timeout" end
    pb.timeout = raw.timeout
  end
  return pb
end

-- ------------------------------------------------------------------ loading

local function format_of(name)
  if name:find("%.ya?ml$") then return "yaml" end
  return "lua"
end

-- Line ranges of the entries of a YAML file whose top level is a list ("- id: ...").
local function yaml_ranges(lines, n)
  local starts = {}
  for i, line in ipairs(lines) do
    if line:find("^%-%s") or line == "-" then starts[#starts + 1] = i end
  end
  local ranges = {}
  for k = 1, n do
    local from = starts[k] or 1
    local to = (starts[k + 1] or (#lines + 1)) - 1
    ranges[k] = { from, to }
  end
  return ranges
end

-- The line a problem is reported at: where key is, else where the entry starts.
local function line_for(lines, range, key, lua)
  if key then
    local l = key_line(lines, key, range[1], range[2], lua)
    if l then return l end
  end
  if lua then
    for i = range[1], math.min(range[2], #lines) do
      if lines[i]:find("^%s*return") then return i end
    end
  end
  return range[1]
end

--- Parses the text of a playbook file. `name` is its path (it decides the format: *.yaml
--- and *.yml are YAML, anything else Lua). Never raises for bad input: returns the
--- playbooks it could check (each with .file, .line, .format) and the problems found
--- ({file=, line=, message=}; a bad entry is left out, the others kept).
---@param text string
---@param name string
---@return table[] playbooks
---@return table[] problems
function M.parse(text, name)
  assert(type(text) == "string", "playbook.parse: the text must be a string")
  assert(type(name) == "string", "playbook.parse: the name must be a string")
  local problems, out = {}, {}
  local function problem(line, msg)
    problems[#problems + 1] = { file = name, line = line or 1, message = msg }
  end
  local fmt = format_of(name)
  local lines = split_lines(text)
  local entries, ranges
  if fmt == "yaml" then
    local doc, err = require("relua.yaml").decode(text, name)
    if err then
      -- libyaml names where it noticed, and often where the construct began ("while
      -- parsing a flow sequence at line 2"): the beginning is what the author fixes.
      local line = tonumber(err:match(" at line (%d+)")) or tonumber(err:match(":(%d+):%d+:"))
      problem(line, "bad YAML: " .. (err:gsub("^yaml%.decode: ", ""):gsub("^" .. name:gsub("%p", "%%%0") .. ":%d+:%d+: ", "")))
      return out, problems
    end
    if type(doc) ~= "table" then
      problem(1, "a playbook file holds a mapping (one playbook) or a list of them, not " .. (doc == nil and "nothing" or "a " .. type(doc)))
      return out, problems
    end
    if doc.id ~= nil or not is_list(doc) or #doc == 0 then
      entries, ranges = { doc }, { { 1, #lines } }
    else
      entries, ranges = doc, yaml_ranges(lines, #doc)
    end
  else
    local chunk, err = load(text, "=" .. name, "t", setmetatable({}, { __index = _G }))
    if not chunk then
      problem(tonumber(tostring(err):match("^[^:]*:(%d+):")), "Lua syntax: " .. tostring(err):gsub("^[^:]*:%d+: ", ""))
      return out, problems
    end
    local ok, v = pcall(chunk)
    if not ok then
      local msg = type(v) == "table" and tostring(v.message) or tostring(v)
      problem(tonumber(msg:match("^[^:]*:(%d+):")), "it raised an error while loading: " .. msg:gsub("^[^:]*:%d+: ", ""))
      return out, problems
    end
    if type(v) ~= "table" then
      problem(#lines, "a playbook file returns a table (or a list of them), not " .. (v == nil and "nothing" or "a " .. type(v)))
      return out, problems
    end
    if v.id == nil and is_list(v) and #v > 0 then entries = v else entries = { v } end
    ranges = {}
    for k = 1, #entries do ranges[k] = { 1, #lines } end
    if #entries > 1 then  -- entries of a list: each starts at its own "{" line, in order
      local starts, pos = {}, 1
      for k = 1, #entries do
        local id = type(entries[k]) == "table" and entries[k].id
        local l = type(id) == "string" and key_line(lines, "id", pos, #lines, true)
        if l then starts[k] = l; pos = l + 1 end
      end
      for k = 1, #entries do
        if starts[k] then ranges[k] = { starts[k], (starts[k + 1] or #lines + 1) - 1 } end
      end
    end
  end
  for k, raw in ipairs(entries) do
    local pb, err, key = normalize(raw)
    if pb then
      pb.file, pb.format = name, fmt
      pb.line = line_for(lines, ranges[k], "id", fmt == "lua")
      out[#out + 1] = pb
    else
      local where = (type(raw) == "table" and type(raw.id) == "string") and (raw.id .. ": ") or ""
      problem(line_for(lines, ranges[k], key, fmt == "lua"), where .. err)
    end
  end
  return out, problems
end

--- Reads and parses a playbook file (see M.parse).
---@param path string
---@return table[] playbooks
---@return table[] problems
function M.load_file(path)
  local f, why = io.open(path, "r")
  if not f then return {}, { { file = path, line = 1, message = "cannot read: " .. tostring(why) } } end
  local text = f:read("a")
  f:close()
  return M.parse(text, path)
end

local function is_playbook_file(name)
  return name:find("%.lua$") or name:find("%.ya?ml$")
end

--- The playbook files of a folder (*.lua, *.yaml, *.yml), sorted.
---@param dir string
---@return string[]
function M.files(dir)
  local names = require("relua.fs").list(dir) or {}
  local out = {}
  for _, n in ipairs(names) do
    if is_playbook_file(n) and n:sub(1, 1) ~= "." then out[#out + 1] = dir .. "/" .. n end
  end
  table.sort(out)
  return out
end

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

local function abs(p)
  if p:sub(1, 1) ~= "/" then p = fsc.cwd() .. "/" .. p end
  local parts = {}
  for seg in p:gmatch("[^/]+") do
    if seg == ".." then parts[#parts] = nil elseif seg ~= "." then parts[#parts + 1] = seg end
  end
  return "/" .. table.concat(parts, "/")
end

local function isdir(p)
  return require("relua.fs").isdir(p)
end

--- The shipped set: share/relua/playbooks beside an installed binary (PREFIX/bin/relua),
--- or, for a binary built in a source tree (build/bin/relua, build/asan/bin/relua), the
--- tree's playbooks/ (the nearest folder above it holding both playbooks/ and recipes/).
--- nil when none is found.
---@return string?
function M.shipped_dir()
  local exe = require("relua.fs").readlink("/proc/self/exe")
  if not exe then return nil end
  local bin = dirname(exe)
  if isdir(bin .. "/../share/relua/playbooks") then return abs(bin .. "/../share/relua/playbooks") end
  local d = bin
  for _ = 1, 4 do
    if isdir(d .. "/playbooks") and isdir(d .. "/recipes") then return abs(d .. "/playbooks") end
    d = dirname(d)
    if d == "" then break end
  end
  local data = require("relua.version").datadir()  -- the DATADIR relua was built for
  if data and isdir(data .. "/playbooks") then return abs(data .. "/playbooks") end
end

-- A folder's absolute path with the folder itself resolved when it is a symbolic link
-- (a source tree's build/share/relua/playbooks links to its playbooks/): one folder is
-- searched once, however it is reached.
local function resolved(d)
  local a = abs(d)
  local target = require("relua.fs").readlink(a)
  if target then a = abs(target:sub(1, 1) == "/" and target or (dirname(a) .. "/" .. target)) end
  return a
end

--- The folders searched, in order: the recipe's playbooks/ (beside it; without a recipe,
--- opts.here: the current folder's playbooks/), each entry of RELUA_PLAYBOOKS
--- (`:`-separated), the shipped set. Each {dir=, source=}.
---@param recipe_path string?
---@param here boolean? without a recipe, search ./playbooks
---@return table[]
function M.search_path(recipe_path, here)
  local out, seen = {}, {}
  local function add(d, source)
    if d == nil or d == "" then return end
    local a = abs(d)
    local key = resolved(d)
    if seen[key] then return end
    seen[key] = true
    out[#out + 1] = { dir = a, source = source }
  end
  if recipe_path then add(dirname(abs(recipe_path)) .. "/playbooks", "recipe")
  elseif here then add("playbooks", "here") end
  for d in (os.getenv("RELUA_PLAYBOOKS") or ""):gmatch("[^:]+") do add(d, "RELUA_PLAYBOOKS") end
  add(M.shipped_dir(), "shipped")
  return out
end

--- Loads every playbook on the search path (or of the given files/folders). Problems are
--- collected, never raised: a bad file is reported and left out, and a duplicate id is
--- reported naming both files, and both copies are left out.
---@param opts {recipe:string?, here:boolean?, paths:string[]?}?
---@return {playbooks:table[], problems:table[], by_id:table, dirs:table[]}
function M.discover(opts)
  opts = opts or {}
  local files, dirs = {}, {}
  if opts.paths then
    for _, p in ipairs(opts.paths) do
      if isdir(p) then
        for _, f in ipairs(M.files(p)) do files[#files + 1] = { path = f, source = p } end
      else
        files[#files + 1] = { path = p, source = "given" }
      end
    end
  else
    dirs = M.search_path(opts.recipe, opts.here)
    for _, d in ipairs(dirs) do
      for _, f in ipairs(M.files(d.dir)) do files[#files + 1] = { path = f, source = d.source } end
    end
  end
  local all, problems, first, dup = {}, {}, {}, {}
  for _, f in ipairs(files) do
    local pbs, probs = M.load_file(f.path)
    for _, p in ipairs(probs) do problems[#problems + 1] = p end
    for _, pb in ipairs(pbs) do
      pb.source = f.source
      local prev = first[pb.id]
      if prev then
        problems[#problems + 1] = { file = pb.file, line = pb.line, message = string.format(
          "duplicate playbook id %s: %s:%d and %s:%d (ids are unique across the search path; both are skipped)",
          pb.id, prev.file, prev.line, pb.file, pb.line) }
        dup[pb.id] = true
      else
        first[pb.id] = pb
        all[#all + 1] = pb
      end
    end
  end
  local list, by_id = {}, {}
  for _, pb in ipairs(all) do
    if not dup[pb.id] then list[#list + 1] = pb; by_id[pb.id] = pb end
  end
  return { playbooks = list, problems = problems, by_id = by_id, dirs = dirs }
end

--- The problems of the playbooks in a folder (or file), as "file:line: message" strings
--- (`relua check` lists them with the recipe's). A missing folder has none.
---@param path string
---@return string[]
function M.lint(path)
  if not require("relua.fs").exists(path) then return {} end
  local out = {}
  for _, p in ipairs(M.discover({ paths = { path } }).problems) do out[#out + 1] = M.format_problem(p) end
  return out
end

--- The ids of the playbooks on the search path (for shell completion), sorted.
---@param recipe_path string?
---@return string[]
function M.ids(recipe_path)
  local ids = {}
  for _, pb in ipairs(M.discover({ recipe = recipe_path }).playbooks) do ids[#ids + 1] = pb.id end
  table.sort(ids)
  return ids
end

--- "file:line: message" for a problem.
function M.format_problem(p)
  return string.format("%s:%d: %s", p.file, p.line or 1, p.message)
end

-- ------------------------------------------------------------------ failures

-- The last attempt's part of a phase's output file, bounded.
local function tail_of(text)
  local last
  local pos = 1
  while true do
    local s, e = text:find("\n?%-%-%- [^\n]* phase [^\n]*, attempt %d+ %-%-%-\n", pos)
    if not s then break end
    last, pos = e + 1, e + 1
  end
  if last then text = text:sub(last) end
  local lines = split_lines(text)
  if lines[#lines] == "" then lines[#lines] = nil end
  local first = math.max(1, #lines - M.TAIL_LINES + 1)
  local t = table.concat(lines, "\n", first)
  if #t > M.TAIL_BYTES then t = t:sub(-M.TAIL_BYTES):gsub("^[^\n]*\n", "") end
  return t
end
M.tail_of = tail_of

--- The recorded failure of a ticket's state: {ticket=, phase=, rc=, message=, code=, hint=,
--- tail=, status=}, or nil when no phase failed or was left running. Reads the phase's
--- `failure` record when the ledger has one, else its rc and msg and the tail of its
--- output file (`out_dir`/PHASE.out).
---@param state table     the ticket's state document
---@param out_dir string? the ticket's output folder
---@return table?
function M.failure(state, out_dir)
  for _, p in ipairs(state.phases or {}) do
    if p.status == "failed" or p.status == "running" then
      local f = type(p.failure) == "table" and p.failure or {}
      local rec = {
        ticket = state.ticket, phase = p.name, status = p.status,
        rc = f.rc or p.rc, message = f.message or p.msg or "", code = f.code, hint = f.hint,
        tail = f.tail,
      }
      if p.status == "running" and rec.rc == nil and rec.message == "" then
        -- interrupted: the run died in the phase (killed, the machine stopped), nothing recorded its end
        rec.message = "the run died in this phase (killed, or the machine stopped) before it finished"
      end
      if rec.tail == nil and out_dir then
        local fh = io.open(out_dir .. "/" .. p.name .. ".out", "r")
        if fh then
          rec.tail = tail_of(fh:read("a"))
          fh:close()
        end
      end
      rec.tail = rec.tail or ""
      return rec
    end
  end
end

--- Does the playbook's symptom match the failure? Returns true/false and what matched.
---@param pb table
---@param failure table
---@return boolean
---@return string[] reasons
function M.matches(pb, failure)
  local s, why = pb.symptom, {}
  local seen = (failure.message or "") .. "\n" .. (failure.hint or "") .. "\n" .. (failure.tail or "")
  if s.phase then
    local ok = false
    for _, n in ipairs(s.phase) do if n == failure.phase then ok = true end end
    if not ok then return false, why end
    why[#why + 1] = "phase " .. failure.phase
  end
  if s.rc then
    local ok = false
    for _, n in ipairs(s.rc) do if n == failure.rc then ok = true end end
    if not ok then return false, why end
    why[#why + 1] = "rc " .. tostring(failure.rc)
  end
  if s.code then
    local ok = false
    for _, n in ipairs(s.code) do if n == failure.code then ok = true end end
    if not ok then return false, why end
    why[#why + 1] = "code " .. tostring(failure.code)
  end
  if s.message then
    if not test_any(s.message, failure.message) then return false, why end
    why[#why + 1] = "message"
  end
  if s.output then
    if not test_any(s.output, seen) then return false, why end
    why[#why + 1] = "output"
  end
  if s.text then
    local hit
    for _, q in ipairs(s.quotes or {}) do
      if quote_found(q, seen) then hit = q break end
    end
    if not hit then return false, why end
    why[#why + 1] = string.format("quoted %q", hit)
  end
  return #why > 0, why
end

--- The playbooks whose symptom matches, most specific first: {{playbook=, reasons=}}.
function M.select(playbooks, failure)
  local out = {}
  for _, pb in ipairs(playbooks) do
    local ok, why = M.matches(pb, failure)
    if ok then out[#out + 1] = { playbook = pb, reasons = why } end
  end
  table.sort(out, function(a, b)
    if #a.reasons ~= #b.reasons then return #a.reasons > #b.reasons end
    return a.playbook.id < b.playbook.id
  end)
  return out
end

-- ------------------------------------------------------------------ checks

--- Describes a check for people: "./verify.sh (expect exit 0)".
function M.describe_check(c)
  if c.fn and not c.run then return c.name or "a Lua check" end
  local parts = {}
  local e = c.expect or {}
  if e.code then parts[#parts + 1] = "exit " .. e.code end
  for _, m in ipairs(e.output or {}) do parts[#parts + 1] = "output " .. describe_matcher(m) end
  if e.fn then parts[#parts + 1] = "a Lua expectation" end
  local cmd = c.run
  if cmd:find("\n") then cmd = trim(cmd):gsub("\n.*", " ...") end
  local s = c.name and (c.name .. ": " .. cmd) or cmd
  if #parts > 0 then s = s .. " (expect " .. table.concat(parts, ", ") .. ")" end
  return s
end

--- Runs one check. opts: ctx (the playbook context, whose env the command gets), timeout,
--- cwd, record (true: output streamed to the terminal and the ticket's output file like
--- r:sh). Returns passed, a one-line account, and the process result (for a command).
---@return boolean passed
---@return string detail
---@return table? result
function M.run_check(c, opts)
  local ctx = opts.ctx
  local timeout = c.timeout or opts.timeout or M.TIMEOUT
  if c.fn then
    local ok, r, detail = pcall(c.fn, ctx)
    if not ok then
      local msg = type(r) == "table" and tostring(r.message) or tostring(r)
      return false, "raised: " .. msg:gsub("\n.*", "")
    end
    return r and true or false, detail and tostring(detail) or (r and "passed" or "failed")
  end
  local proc = require "relua.proc"
  local env = ctx and ctx:env() or {}
  local pres, err
  if opts.record and ctx then
    pres, err = ctx:sh(c.run, { check = false, timeout = timeout, cwd = opts.cwd })
  else
    pres, err = proc.sh(c.run, { env = env, timeout = timeout, cwd = opts.cwd })
  end
  if not pres then return false, "could not start: " .. tostring(err) end
  if pres.timed_out then
    return false, string.format("timed out after %gs (its process group was killed): not matched", timeout), pres
  end
  local out = (pres.stdout or "") .. (pres.stderr or "")
  local e = c.expect or { code = 0 }
  local rc = pres.code or (128 + (pres.signal or 0))
  -- what the check said last, for the person reading why it did not pass (masked whole,
  -- then shortened: a secret cut in two would not be recognised)
  local function said()
    local last
    for line in out:gmatch("[^\n]+") do
      if line:find("%S") then last = line end
    end
    return last and (": " .. require("relua.core.secret").mask(trim(last)):sub(1, 200)) or ""
  end
  if e.code and rc ~= e.code then
    return false, string.format("exited with %d (expected %d)%s", rc, e.code, said()), pres
  end
  if e.output and not test_any(e.output, out) then
    return false, "output lacks " .. describe_matcher(e.output[1]) .. said(), pres
  end
  if e.fn then
    local ok, r = pcall(e.fn, pres, ctx)
    if not ok or not r then return false, "the expectation failed" .. (ok and "" or ": " .. tostring(r)), pres end
  end
  return true, string.format("passed (exit %d)", rc), pres
end

--- Runs a playbook's detection checks: "confirmed" (all passed), "unconfirmed" (it has
--- none) or "not matched", with one line per check.
---@return string status
---@return table[] results {check=, passed=, detail=}
function M.detect(pb, opts)
  if #pb.detect == 0 then return "unconfirmed", {} end
  local results, status = {}, "confirmed"
  for _, c in ipairs(pb.detect) do
    local passed, detail = M.run_check(c, { ctx = opts.ctx, timeout = pb.timeout or opts.timeout,
      cwd = opts.cwd, record = opts.record })
    results[#results + 1] = { check = c, passed = passed, detail = detail }
    if not passed then status = "not matched" break end
  end
  return status, results
end

-- ------------------------------------------------------------------ the failure message

local release = require "relua.release"

-- Is every detection check of pb quick (see doc/playbooks.md)? A playbook without any has
-- nothing to run.
local function quick_detection(pb)
  for _, c in ipairs(pb.detect) do
    if not c.quick then return false end
  end
  return true
end

--- What the failure message can say of a playbook whose symptom matches, without running
--- anything slow: "confirmed" (its quick detection passed), "unconfirmed" (it has no
--- detection checks), "not matched" (its quick detection failed) or "not run" (some check
--- is not quick: only `relua diagnose` runs it). Quick checks get the context diagnose
--- gives (relua.playbook.commands.readonly_ctx), so both say the same of a playbook.
---@param m table       an entry of M.select
---@param hctx table?   that context; nil when none could be made
---@return string
function M.hint_status(m, hctx)
  local pb = m.playbook
  if #pb.detect == 0 then return "unconfirmed" end
  if not hctx or not quick_detection(pb) then return "not run" end
  local ran
  local function refuse() ran = true; error("a quick check runs no command", 2) end
  local sh, run = hctx.sh, hctx.run
  hctx.sh, hctx.run = refuse, refuse
  local status = M.detect(pb, { ctx = hctx })
  hctx.sh, hctx.run = sh, run
  return ran and "not run" or status
end

--- The lines added to a failed run's message: the playbooks whose symptom matches and
--- whose quick detection (if any) did not rule them out, and the diagnose command.
function M.failure_hint(ctx)
  local state = ctx.state
  if type(state) ~= "table" then return nil end
  local tickets = require("relua.ticket")
  local out_dir = tickets.dir() .. "/" .. ctx.ticket
  local failure = M.failure(state, out_dir)
  if not failure then return nil end
  local found = M.discover({ recipe = ctx.recipe_path })
  local sel = M.select(found.playbooks, failure)
  local hctx
  if #sel > 0 then
    local ok, c = pcall(require("relua.playbook.commands").readonly_ctx,
      { id = ctx.ticket, state = state, paths = { dir = tickets.dir() } }, failure, ctx.recipe)
    hctx = ok and c or nil
  end
  local kept, out = {}, {}
  for i, m in ipairs(sel) do
    m.order, m.status = i, M.hint_status(m, hctx)
    if m.status == "not matched" then out[#out + 1] = m.playbook.id else kept[#kept + 1] = m end
  end
  local ruled = #out > 0 and string.format("the detection of %s ruled %s out (relua diagnose %s shows why)",
    table.concat(out, ", "), #out == 1 and "it" or "them", ctx.ticket)
  if #kept == 0 then
    return string.format("No playbook matches this failure%s. Once it is fixed, keep the fix as a playbook: relua playbook new ID --from %s",
      ruled and (": " .. ruled) or "", ctx.ticket)
  end
  table.sort(kept, function(a, b)  -- confirmed first, as diagnose ranks them
    if (a.status == "confirmed") ~= (b.status == "confirmed") then return a.status == "confirmed" end
    return a.order < b.order
  end)
  local lines = { "Matching playbooks:" }
  for _, m in ipairs(kept) do
    lines[#lines + 1] = string.format("  %s%s%s", m.playbook.id, m.playbook.title and (": " .. m.playbook.title) or "",
      m.status == "not run" and "  (detection not run: relua diagnose runs it)" or "")
  end
  if ruled then lines[#lines + 1] = "Not these: " .. ruled end
  lines[#lines + 1] = string.format("Diagnose: relua diagnose %s   (then: relua recover %s)", ctx.ticket, ctx.ticket)
  return lines
end

if not M._hint_added then
  release.add_hint(M.failure_hint)
  M._hint_added = true
end

M._internal = { trim = trim, split_lines = split_lines, quote_found = quote_found, abs = abs, dirname = dirname }

return M
