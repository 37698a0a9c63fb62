-- Fills a man page's scdoc source with the commands of relua.cli (their usage, options,
-- exit codes and examples: the same text as `relua help COMMAND`).
-- usage: relua tools/man.lua doc/man/relua.1.scd > build/man/relua.1.scd
local cli = require "relua.cli"
local help = require "relua.cli.help"

local src = assert(io.open(arg[1])):read("a")

-- scdoc's markup characters, taken literally.
local function lit(s) return (s:gsub("[\\*_]", "\\%0")) end

local out = {}
local function add(s) out[#out + 1] = s end
for _, c in ipairs(help.list(cli)) do
  add("## " .. lit(c.name))
  add("")
  for i, u in ipairs(c.usage) do add("*" .. lit(u) .. "*" .. (i < #c.usage and "++" or "")) end
  add("")
  add(lit(c.description or (c.summary:gsub("^%l", string.upper) .. ".")))
  add("")
  for _, o in ipairs(c.options) do
    add("*" .. lit(o[1]) .. "*")
    add("\t" .. lit(o[2]))
    add("")
  end
  local codes = {}
  for _, e in ipairs(help.exits(c)) do codes[#codes + 1] = "*" .. e[1] .. "* " .. lit(e[2]) end
  add("Exit status: " .. table.concat(codes, "; ") .. ".")
  add("")
  add("```")
  for _, ex in ipairs(c.examples) do add(ex) end
  add("```")
  add("")
end
io.stdout:write((src:gsub("@COMMANDS@", function() return table.concat(out, "\n") end)))
