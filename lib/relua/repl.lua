--- relua.repl: the interactive prompt (`relua` on a terminal, `relua -i`, `relua repl`).
-- Line editing and persistent history through GNU readline (host/readline.c), multi-line
-- chunks, values printed with relua.pretty, Tab completion of globals, fields and methods,
-- the host modules pre-bound as globals. On a pipe it reads line by line, without prompts.
local pretty = require "relua.pretty"
local errors = require "relua.error"

local M = {}

--- Lines kept in the history file.
M.HISTORY_MAX = 1000

--- Modules bound as globals in the REPL only (those that load).
M.BINDINGS = { "git", "http", "proc", "fs", "json", "yaml", "log", "pretty", "semver" }

local rl -- relua.core.readline, loaded on a terminal only

-- ------------------------------------------------------------------ history

--- The history file: $RELUA_HISTORY (empty: no history), else ~/.relua_history.
---@return string?
function M.history_path()
  local p = os.getenv("RELUA_HISTORY")
  if p then return p ~= "" and p or nil end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.relua_history" end
  return nil
end

local function read_lines(path)
  local f = io.open(path, "rb")
  if not f then return {} end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

-- Keeps the last `max` lines of the file (rewritten through a temporary file and rename).
local function trim(path, lines, max)
  if #lines <= max then return true end
  local keep = table.move(lines, #lines - max + 1, #lines, 1, {})
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(table.concat(keep, "\n"), "\n")
  local ok, werr = f:close()
  if not ok then os.remove(tmp); return nil, werr end
  return os.rename(tmp, path)
end

local History = {}
History.__index = History

local function open_history(path)
  local h = setmetatable({ path = path, last = nil, warned = false }, History)
  if not path then return h end
  local lines = read_lines(path)
  trim(path, lines, M.HISTORY_MAX)
  for i = math.max(1, #lines - M.HISTORY_MAX + 1), #lines do
    rl.add_history(lines[i])
    h.last = lines[i]
  end
  return h
end

function History:add(entry)
  if not entry:find("%S") or entry == self.last then return end
  self.last = entry
  rl.add_history(entry)
  if not self.path then return end
  -- Appended at once, so a session that ends abruptly (os.exit, a kill) keeps its lines.
  local f, err = io.open(self.path, "ab")
  if f then
    f:write(entry, "\n")
    f:close()
  elseif not self.warned then
    self.warned = true
    io.stderr:write("relua: history not saved: ", err,
      " (set RELUA_HISTORY to another file, or to nothing to turn history off)\n")
  end
end

function History:close()
  if self.path then trim(self.path, read_lines(self.path), M.HISTORY_MAX) end
end

-- ------------------------------------------------------------------ completion

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
  "while" }

-- The table that v's metatable __index points to, without calling any function.
local function index_table(v)
  local mt = debug.getmetatable(v)
  local idx = type(mt) == "table" and rawget(mt, "__index")
  return type(idx) == "table" and idx or nil
end

-- v[name] without side effects: raw fields, then __index tables (never __index functions).
local function peek(v, name)
  for _ = 1, 16 do
    if type(v) == "table" then
      local x = rawget(v, name)
      if x ~= nil then return x end
    end
    v = index_table(v)
    if v == nil then return nil end
  end
  return nil
end

-- Names reachable from v: its own string keys and those of its __index tables.
local function names_of(v, methods_only, add)
  local depth = 0
  while v ~= nil and depth < 16 do
    if type(v) == "table" then
      for k, x in next, v do
        if type(k) == "string" and k:match("^[%a_][%w_]*$") and (not methods_only or type(x) == "function") then
          add(k)
        end
      end
    end
    v = index_table(v)
    depth = depth + 1
  end
end

--- Completion candidates for the word before the cursor: `pri` -> print, `fs.re` ->
--- fs.read, fs.remove; `repo:he` -> repo:head (methods through metatables' __index tables).
---@param word string
---@param env table? where globals are looked up (default _G)
---@return string[]
function M.complete(word, env)
  env = env or _G
  local path, sep, partial = word:match("^(.-)([.:]?)([%a_]?[%w_]*)$")
  if not path then return {} end
  local found, out = {}, {}
  local function add(name)
    if name:sub(1, #partial) == partial and not found[name] then
      found[name] = true
      out[#out + 1] = path .. sep .. name
    end
  end
  if path == "" and sep == "" then
    names_of(env, false, add)
    for _, k in ipairs(KEYWORDS) do add(k) end
  else
    if path == "" or not path:match("^[%a_][%w_]*[%w_.]*$") or path:find("..", 1, true) or path:sub(-1) == "." then
      return {}
    end
    local v = env
    for name in path:gmatch("[^.]+") do
      v = peek(v, name)
      if v == nil then return {} end
    end
    names_of(v, sep == ":", add)
  end
  table.sort(out)
  return out
end

-- ------------------------------------------------------------------ evaluation

--- Compiles a chunk typed at the prompt: `=expr` and expressions return their values
--- (tried as "return " .. text first, as lua.c does).
---@param text string
---@param env table? the chunk's environment (default _G)
---@return function|nil chunk
---@return string? message
---@return boolean? incomplete true when more lines could complete it
function M.compile(text, env)
  env = env or _G
  if text:sub(1, 1) == "=" then text = "return " .. text:sub(2) end
  local fn, err1 = load("return " .. text, "=repl", "t", env)
  if fn then return fn end
  local fn2, err2 = load(text, "=repl", "t", env)
  if fn2 then return fn2 end
  local incomplete = err2:sub(-5) == "<eof>" or err1:sub(-5) == "<eof>"
  -- An expression read as a statement fails at its first token: say what is wrong with
  -- the expression instead.
  if not incomplete and err2:find("^repl:1: unexpected symbol near") then return nil, err1, false end
  return nil, err2, incomplete
end

-- Drops the frames of the REPL itself and of error(): what is left is the user's code.
local function traceback_lite(tb)
  local frames = {}
  for line in tb:gmatch("[^\n]+") do
    if line:find("in function 'xpcall'", 1, true) or line:find("relua/repl%.lua") then break end
    if line ~= "stack traceback:" and not line:find("^%s*%[C%]: in function 'error'")
      and not line:find("(...tail calls...)", 1, true) then
      frames[#frames + 1] = line
    end
    if #frames >= 10 then
      frames[#frames + 1] = "\t..."
      break
    end
  end
  if #frames <= 1 then return nil end  -- just the line typed: nothing to add
  return "stack traceback:\n" .. table.concat(frames, "\n")
end

local function on_error(e)
  if errors.is(e) then return e end
  local msg
  if type(e) == "string" then msg = e
  elseif type(e) == "table" or type(e) == "userdata" then
    local ok, s = pcall(pretty.format, e)
    msg = "(error object) " .. (ok and s or tostring(e))
  else
    msg = "(error object is a " .. type(e) .. " value)"
  end
  return { message = msg, traceback = traceback_lite(debug.traceback("", 2)) }
end

local function report(e)
  local out = io.stderr
  if errors.is(e) then
    if e.code == "interrupted" and e.exit ~= 130 then error(e, 0)  -- SIGTERM ends the REPL
    elseif e.code == "interrupted" then out:write("interrupted\n")
    else
      out:write("error: ", tostring(e.message), "\n")
      if type(e.hint) == "string" then out:write(e.hint, "\n") end
    end
  elseif type(e) == "table" then
    out:write(tostring(e.message), "\n")
    if e.traceback then out:write(e.traceback, "\n") end
  else
    out:write(tostring(e), "\n")
  end
  out:flush()
end

local function show(n, ...)
  -- `f()` returning `v, nil, nil` (a value and no error) shows v alone
  while n > 1 and select(n, ...) == nil do n = n - 1 end
  if n == 0 then return end
  local parts = {}
  for i = 1, n do parts[i] = pretty.format((select(i, ...))) end
  io.stdout:write(table.concat(parts, "\t"), "\n")
  io.stdout:flush()
end

--- Runs one complete chunk and prints its values or its error.
local function run_chunk(fn)
  local function pack(ok, ...) return ok, select("#", ...), ... end
  local function call() return fn() end
  local results = table.pack(pack(xpcall(call, on_error)))
  if results[1] then
    show(results[2], table.unpack(results, 3, results.n))
  else
    report(results[3])
  end
end

-- ------------------------------------------------------------------ tickets

-- What a ticket shows in the REPL: its summary first; the full record on request.
local Ticket = {}
Ticket.__index = Ticket

function Ticket:__tostring()
  local s, st = self.summary, self.state
  local head = s.status
  if s.status == "failed" then head = string.format("failed in phase %s (rc=%s)", s.phase, tostring(s.rc))
  elseif s.status == "interrupted" then head = "interrupted in phase " .. tostring(s.phase) end
  local lines = { string.format("ticket %s: %s", self.id, head) }
  local phases = {}
  for _, p in ipairs(st.phases) do phases[#phases + 1] = p.name .. "=" .. p.status end
  lines[#lines + 1] = "phases: " .. table.concat(phases, " ")
  if s.msg then lines[#lines + 1] = "error: " .. tostring(s.msg):gsub("\n.*", "") end
  local recipe = st.recipe and st.recipe.path or "RECIPE"
  if s.status == "failed" or s.status == "interrupted" then
    local undo = string.format("  (or relua revert %s)", self.id)
    if require("relua.release.noreturn").ticket_past(st) then undo = "  (past the point of no return: retry, or release a new version)" end
    lines[#lines + 1] = string.format("next: relua %s %s --from=%s%s", recipe, self.id, s.phase, undo)
  elseif s.status ~= "done" and s.status ~= "running" then
    lines[#lines + 1] = string.format("next: relua %s %s", recipe, self.id)
  end
  lines[#lines + 1] = "(:full() the whole record; .state, .log, .summary its parts)"
  return table.concat(lines, "\n")
end

--- The whole record, as a plain table.
function Ticket:full()
  local t = {}
  for k, v in pairs(self) do t[k] = v end
  return t
end

--- `ticket("1234")` in the REPL: the ticket's record (relua.ticket.load), shown as a summary.
---@param id string
---@return table|nil
---@return string? message
function M.ticket(id, opts)
  local t, err, code = require("relua.ticket").load(id, opts)
  if not t then return nil, err, code end
  return setmetatable(t, Ticket)
end

-- ------------------------------------------------------------------ the loop

local function bind_globals()
  for _, name in ipairs(M.BINDINGS) do
    if rawget(_G, name) == nil then
      local ok, mod = pcall(require, "relua." .. name)
      if ok then
        rawset(_G, name, mod)
      elseif not tostring(mod):find("module 'relua." .. name .. "' not found", 1, true) then
        io.stderr:write("relua: repl: relua.", name, " did not load: ", tostring(mod), "\n")
      end
    end
  end
  if rawget(_G, "registry") == nil then
    -- registry.pypi, registry.npm, ...: loaded when first used
    rawset(_G, "registry", setmetatable({}, { __index = function(t, k)
      local ok, mod = pcall(require, "relua.registry." .. tostring(k))
      if ok then rawset(t, k, mod) return mod end
    end }))
  end
  if rawget(_G, "ticket") == nil then rawset(_G, "ticket", M.ticket) end
end

-- Reads one line: the text, nil at the end of input, false for Ctrl-C.
local function terminal_reader(history)
  local function completer(word) return M.complete(word, _G) end
  return function(prompt)
    return rl.readline(prompt, completer)
  end, function(chunk) history:add(chunk) end
end

local function pipe_reader()
  return function() return io.stdin:read("l") end, function() end
end

-- One chunk: read lines until they compile (or fail to), run it. "eof" at the end of input.
local function step(read, remember)
  local line = read("> ")
  if line == nil then return "eof" end
  if line == false then return end  -- Ctrl-C: the line is dropped
  local text = line
  while true do
    local fn, err, incomplete = M.compile(text)
    if fn then
      remember(text)
      run_chunk(fn)
      return
    end
    if not incomplete then
      remember(text)
      report(err)
      return
    end
    local more = read(">> ")
    if more == nil then  -- the input ended inside a chunk: say what it lacks, as lua does
      remember(text)
      report(err)
      return "eof"
    end
    if more == false then return end  -- Ctrl-C cancels the whole chunk
    text = text .. "\n" .. more
  end
end

--- Runs the REPL until the end of input (Ctrl-D); returns the exit status (0).
---@return integer
function M.run()
  local tty = false
  local ok_rl, core = pcall(require, "relua.core.readline")
  if ok_rl then
    rl = core
    tty = rl.isatty(0)
  else
    io.stderr:write("relua: repl: no line editing (relua.core.readline did not load: ", tostring(core), ")\n")
  end
  bind_globals()
  local read, remember, history
  if tty then
    history = open_history(M.history_path())
    read, remember = terminal_reader(history)
    io.stdout:write(require("relua.version").describe(), "  (Ctrl-D exits)\n")
    io.stdout:flush()
  else
    read, remember = pipe_reader()
  end
  while true do
    -- A Ctrl-C that lands between chunks (its hook fires at the next Lua instruction) is
    -- caught here like one during evaluation.
    local ok, status = xpcall(step, on_error, read, remember)
    if ok and status == "eof" then break end
    if not ok then report(status) end
  end
  if history then history:close() end  -- readline ended the prompt's line at Ctrl-D
  io.stdout:flush()
  return 0
end

return M
