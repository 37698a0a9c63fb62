--- relua.cli.help: renders the help of relua.cli's command table (`relua help`,
-- `relua COMMAND --help`, the usage hint of a usage error). The text lives with each
-- command in lib/relua/cli.lua; this file only lays it out.
local errors = require "relua.error"

local M = {}

local WIDTH = 78

-- Words of `text` filled into lines of at most WIDTH columns, each starting with `indent`.
local function wrap(text, indent)
  local lines, line = {}, nil
  for word in text:gmatch("%S+") do
    if line and #line + 1 + #word > WIDTH then
      lines[#lines + 1] = line
      line = nil
    end
    line = line and (line .. " " .. word) or (indent .. word)
  end
  if line then lines[#lines + 1] = line end
  return table.concat(lines, "\n")
end

-- Rows of {left, right} as a two-column table, the right column wrapped.
local function columns(rows, indent)
  local width = 0
  for _, r in ipairs(rows) do width = math.max(width, #r[1]) end
  local out = {}
  for _, r in ipairs(rows) do
    local pad = indent .. r[1] .. string.rep(" ", width - #r[1] + 2)
    local body = wrap(r[2], string.rep(" ", #pad))
    out[#out + 1] = pad .. body:sub(#pad + 1)
  end
  return table.concat(out, "\n")
end

--- The exit statuses of a command, sorted: { {code, meaning}, ... }.
---@param cmd relua.Command
---@return table[]
function M.exits(cmd)
  local codes = {}
  for code in pairs(cmd.exits) do codes[#codes + 1] = code end
  table.sort(codes)
  local rows = {}
  for i, code in ipairs(codes) do rows[i] = { code, cmd.exits[code] } end
  return rows
end

--- The full help of one command.
---@param cmd relua.Command
---@return string
function M.render(cmd)
  local out = {}
  for i, u in ipairs(cmd.usage) do
    out[#out + 1] = (i == 1 and "usage: " or "       ") .. u
  end
  out[#out + 1] = ""
  out[#out + 1] = wrap(cmd.description or (cmd.summary:gsub("^%l", string.upper) .. "."), "")
  if #cmd.options > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "options:"
    out[#out + 1] = columns(cmd.options, "  ")
  end
  out[#out + 1] = ""
  out[#out + 1] = "exit codes:"
  local rows = {}
  for _, e in ipairs(M.exits(cmd)) do rows[#rows + 1] = { tostring(e[1]), e[2] } end
  out[#out + 1] = columns(rows, "  ")
  out[#out + 1] = ""
  out[#out + 1] = #cmd.examples > 1 and "examples:" or "example:"
  for _, ex in ipairs(cmd.examples) do out[#out + 1] = "  " .. ex end
  return table.concat(out, "\n") .. "\n"
end

--- The hint of a usage error raised by a command: its usage lines and where to read more.
---@param cmd relua.Command
---@return string
function M.usage_hint(cmd)
  local lines = {}
  for i, u in ipairs(cmd.usage) do lines[i] = (i == 1 and "usage: " or "       ") .. u end
  lines[#lines + 1] = "(relua help " .. cmd.name .. " shows the options, exit codes and an example)"
  return table.concat(lines, "\n")
end

--- The commands of a group ("store" for "store copy", "store migrate"), one usage line each.
---@param cli table relua.cli
---@param group string
---@return string
function M.group_hint(cli, group)
  local lines = {}
  for _, c in ipairs(cli.group(group)) do
    for _, u in ipairs(c.usage) do lines[#lines + 1] = (#lines == 0 and "usage: " or "       ") .. u end
  end
  lines[#lines + 1] = "(relua help " .. group .. " SUBCOMMAND shows one in full)"
  return table.concat(lines, "\n")
end

--- `relua GROUP --help`: every command of the group with its summary.
---@param cli table relua.cli
---@param group string
---@return string
function M.render_group(cli, group)
  local rows = {}
  for _, c in ipairs(cli.group(group)) do rows[#rows + 1] = { c.name, c.summary } end
  return M.group_hint(cli, group) .. "\n\ncommands:\n" .. columns(rows, "  ") .. "\n"
end

--- The visible commands, sorted by name.
---@param cli table relua.cli
---@return relua.Command[]
function M.list(cli)
  local list = {}
  for _, c in pairs(cli.commands) do
    if not c.hidden then list[#list + 1] = c end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

--- `relua help`: the command line and every command with its summary.
---@param cli table relua.cli
---@return string
function M.render_list(cli)
  local rows = {}
  for _, c in ipairs(M.list(cli)) do rows[#rows + 1] = { c.name, c.summary } end
  return table.concat({
    "usage: relua [options] [script [args]]",
    "       relua RECIPE TICKET [--from=PHASE] [--dry-run]",
    "       relua COMMAND [args]",
    "",
    "commands:",
    columns(rows, "  "),
    "",
    "relua help COMMAND (or relua COMMAND --help) shows a command's options, exit codes and an example;",
    "relua --help the interpreter's options.",
  }, "\n") .. "\n"
end

--- `relua help [COMMAND...]`
---@param cli table relua.cli
---@return integer
function M.help_command(cli, ...)
  local words = { ... }
  if #words == 0 then
    io.stdout:write(M.render_list(cli))
    return 0
  end
  local cmd, n = cli.find(words[1], words[2])
  if cmd and n == #words then
    io.stdout:write(M.render(cmd))
    return 0
  end
  if #words == 1 and #cli.group(words[1]) > 0 then
    io.stdout:write(M.render_group(cli, words[1]))
    return 0
  end
  errors.usage("unknown command: " .. table.concat(words, " "), "relua help lists the commands")
end

return M
