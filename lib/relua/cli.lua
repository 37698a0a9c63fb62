--- relua.cli: what the command line runs once the interpreter options are handled.
-- `relua FILE args...` runs FILE as a Lua script; a script that returns a recipe (a table
-- with `phases`) is handed to the release engine with its arguments. A first argument that
-- names a subcommand runs that instead (`relua ./status` runs a file called status).
local errors = require "relua.error"

local M = {}

--- Subcommands: name -> {summary, function(...) returning an exit status}.
M.commands = {}

local function command(name, summary, fn)
  M.commands[name] = { summary = summary, run = fn }
end

command("help", "list the commands", function()
  local names = {}
  for name in pairs(M.commands) do names[#names + 1] = name end
  table.sort(names)
  print("usage: relua [options] [script [args]]")
  print("       relua RECIPE TICKET [--from=PHASE] [--dry-run]")
  print("commands:")
  for _, name in ipairs(names) do
    print(string.format("  %-10s %s", name, M.commands[name].summary))
  end
  return 0
end)

command("version", "show relua's version and its libraries'", function()
  print(require("relua.version").describe())
  return 0
end)

command("repl", "open the interactive prompt", function()
  return M.repl()
end)

-- The release engine (lib/relua/release.lua).
command("run", "run a release: relua run RECIPE TICKET [--from=PHASE] [--dry-run]", function(...)
  return require("relua.release").run_command(...)
end)

command("status", "where a ticket's release stands: relua status TICKET [--json]", function(...)
  return require("relua.release").status_command(...)
end)

command("log", "a ticket's audit log: relua log TICKET", function(...)
  return require("relua.release").log_command(...)
end)

command("list", "every ticket in the ledger and its status", function(...)
  return require("relua.release").list_command(...)
end)

command("revert", "undo a ticket's phases in reverse order: relua revert TICKET", function(...)
  return require("relua.release").revert_command(...)
end)

-- Delivery controls (lib/relua/control.lua, doc/controls.md).
command("pause", "pause a lane: relua pause --lane L --sha SHA --reason R [--by WHO]", function(...)
  return require("relua.control.commands").pause_command(...)
end)

command("unpause", "resume a paused lane: relua unpause --lane L --sha SHA --reason R [--no-wake]", function(...)
  return require("relua.control.commands").unpause_command(...)
end)

command("controls", "a lane's control and its history: relua controls [--lane L] [--json]", function(...)
  return require("relua.control.commands").controls_command(...)
end)

-- A table that looks like a recipe: has phases, or is a list of phase-like tables (a
-- recipe that forgot `phases =`, which the engine then reports).
local function recipe_like(t)
  if type(t) ~= "table" then return false end
  if t.phases ~= nil then return true end
  return type(t[1]) == "table" and (t[1].run ~= nil or t[1].name ~= nil)
end

--- Runs a Lua file with arguments. A file that returns a recipe runs as a release.
---@param path string?  nil reads the script from stdin
---@return integer exit status
function M.run_file(path, ...)
  local chunk, err = loadfile(path)
  if not chunk then
    if path then
      local f, why = io.open(path, "r")
      if not f then
        errors.usage("cannot open " .. why,
          "relua runs a Lua script or a recipe: relua FILE [args]; relua help lists the commands.")
      end
      f:close()
    end
    errors.raise("syntax", err, { exit = 1 })
  end
  _G.print = require("relua.secret").print  -- a script's prints are masked too
  local result = chunk(...)
  if recipe_like(result) then
    return require("relua.release").main(result, path, ...)
  end
  return 0
end

--- `relua FILE args...` or `relua COMMAND args...`
---@return integer exit status
function M.main(first, ...)
  local cmd = M.commands[first]
  if cmd then return cmd.run(...) or 0 end
  return M.run_file(first, ...)
end

--- `relua - args...`, or a script piped in: run stdin.
function M.script(_, ...)
  return M.run_file(nil, ...)
end

--- The interactive prompt.
function M.repl()
  return require("relua.repl").run() or 0
end

return M
