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
  local result = chunk(...)
  if type(result) == "table" and result.phases ~= nil then
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
