--- relua.cli.complete: the candidates the shell completions offer (completions/relua.bash,
-- completions/_relua), computed by relua itself from the command table of relua.cli:
-- commands, their options, ticket names from the ledger, the phase names of a recipe for
-- --from, playbook ids. `relua __complete WORD...` prints one candidate per line; the
-- line `:files` asks the shell to complete file names as well.
local M = {}

local INTERPRETER = { "-e", "-l", "-i", "-v", "--version", "-h", "--help", "--" }

local function starts(s, prefix) return s:sub(1, #prefix) == prefix end

-- The tickets recorded in the ledger, sorted.
local function tickets()
  local ok, list = pcall(function() return require("relua.ticket").list() end)
  local out = {}
  if ok then for _, t in ipairs(list) do out[#out + 1] = t.ticket end end
  return out
end

-- The phase names of a recipe file, loaded with relua's primitives guarded as in a dry
-- run (completing a command line must not change anything).
local function phases(path)
  local chunk = path and loadfile(path)
  if not chunk then return {} end
  local ok, recipe = require("relua.dryrun").call(function() end, chunk)
  local out = {}
  if ok and type(recipe) == "table" and type(recipe.phases) == "table" then
    for _, p in ipairs(recipe.phases) do
      if type(p) == "table" and type(p.name) == "string" then out[#out + 1] = p.name end
    end
  end
  return out
end

-- Playbook ids, when the playbooks engine is there (those the current folder's recipe
-- would see: ./playbooks, RELUA_PLAYBOOKS, the shipped set).
local function playbooks()
  local ok, pb = pcall(require, "relua.playbook")
  if not ok or type(pb) ~= "table" or type(pb.discover) ~= "function" then return {} end
  local ok2, found = pcall(pb.discover, { here = true })
  local ids = {}
  if ok2 and type(found) == "table" then
    for _, p in ipairs(found.playbooks or {}) do ids[#ids + 1] = p.id end
  end
  table.sort(ids)
  return ids
end

-- The visible command names (two-word commands as their first word).
local function commands(cli)
  local seen, out = {}, {}
  for name, c in pairs(cli.commands) do
    local first = name:match("^%S+")
    if not c.hidden and not seen[first] then
      seen[first] = true
      out[#out + 1] = first
    end
  end
  table.sort(out)
  return out
end

-- The kind of candidates an option's value completes with, from the name its help gives
-- the value (--from=PHASE, --playbook ID); "none" for a value relua cannot list.
local VALUE_KINDS = { PHASE = "phase", TICKET = "ticket", PATH = "file", DIR = "file", NAME = "template" }

-- The kind of the value the option `opt` of a command takes (nil: a flag, or not an
-- option of it). Either form is accepted: --playbook ID and --playbook=ID.
local function value_kind(spec, opt)
  if opt == "--store" then return "none" end  -- every ledger command takes --store=URL
  for _, o in ipairs(spec.options or {}) do
    local name, meta = o[1]:match("^(%-%-[%w%-]+)[ =](%u+)")
    if name == opt then
      if name == "--playbook" then return "playbook" end
      return VALUE_KINDS[meta] or "none"
    end
  end
  return nil
end

-- Candidates for a positional argument of kind `kind`.
local function of_kind(cli, kind, words)
  if kind == "ticket" then return tickets()
  elseif kind == "command" then return commands(cli)
  elseif kind == "playbook" then return playbooks()
  elseif kind == "phase" then return phases(words.recipe)
  elseif kind == "template" then
    local ok, names = pcall(function() return require("relua.cli.scaffold").templates() end)
    return ok and names or {}
  end
  return { ":files" }
end

--- The candidates for the last word of a command line (words without the program name;
--- the last one is being typed, possibly empty).
---@param cli table relua.cli
---@param words string[]
---@return string[]
function M.candidates(cli, words)
  local cur = words[#words] or ""
  local before = { table.unpack(words, 1, #words - 1) }
  local list = {}
  local function filter(all)
    local out = {}
    for _, c in ipairs(all) do
      if c == ":files" or starts(c, cur) then out[#out + 1] = c end
    end
    return out
  end
  -- skip the interpreter's options
  local i = 1
  while before[i] and starts(before[i], "-") and before[i] ~= "-" do
    if before[i] == "-e" or before[i] == "-l" then i = i + 1 end
    i = i + 1
  end
  local first = before[i]
  if first == nil then
    if starts(cur, "-") then return filter(INTERPRETER) end
    list = commands(cli)
    list[#list + 1] = ":files"
    return filter(list)
  end
  local cmd, n = cli.find(first, before[i + 1])
  local rest = { table.unpack(before, i + (n or 1)) }
  local spec
  if cmd then spec = cmd
  elseif first:match("%.lua$") then  -- relua RECIPE TICKET ...
    spec = cli.commands.run
    table.insert(rest, 1, first)
  elseif #cli.group(first) > 0 then  -- relua store <subcommand>
    if #rest == 0 then
      for _, c in ipairs(cli.group(first)) do list[#list + 1] = c.name:match("%S+$") end
      return filter(list)
    end
    return {}
  else
    return { ":files" }  -- a script's own arguments
  end
  local words_info = {}
  if spec == cli.commands.run or spec == cli.commands.check then words_info.recipe = rest[1] end
  -- --from=PHASE, --opt=VALUE
  local opt, value = cur:match("^(%-%-[%w%-]+)=(.*)$")
  if opt then
    local kind = value_kind(spec, opt)
    if not kind or kind == "none" then return {} end
    if kind == "file" then return { ":files" } end
    local out = {}
    for _, p in ipairs(of_kind(cli, kind, words_info)) do
      if starts(p, value) then out[#out + 1] = opt .. "=" .. p end
    end
    return out
  end
  -- --playbook ID, --from TICKET: the value of the option before
  local prev = rest[#rest]
  local prev_kind = prev and prev:match("^%-%-[%w%-]+$") and value_kind(spec, prev)
  if prev_kind then
    if prev_kind == "none" then return {} end
    if prev_kind == "file" then return { ":files" } end
    return filter(of_kind(cli, prev_kind, words_info))
  end
  if starts(cur, "-") then
    for _, o in ipairs(spec.options or {}) do
      local name = o[1]:match("^(%-%-[%w%-]+=?)")
      if name then list[#list + 1] = name end
    end
    list[#list + 1] = "--help"
    return filter(list)
  end
  local npos, j = 0, 1
  while rest[j] do
    local w = rest[j]
    if not starts(w, "-") then npos = npos + 1
    elseif w:match("^%-%-[%w%-]+$") and value_kind(spec, w) then j = j + 1  -- its value
    end
    j = j + 1
  end
  local kinds = spec.args or {}
  local kind = kinds[npos + 1]
  if not kind then return {} end
  return filter(of_kind(cli, kind, words_info))
end

--- `relua __complete WORD...`: prints the candidates, one per line.
---@param cli table
---@return integer
function M.command(cli, ...)
  for _, c in ipairs(M.candidates(cli, { ... })) do io.stdout:write(c, "\n") end
  return 0
end

return M
