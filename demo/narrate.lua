-- The narration of the demos: a step's title in bold on a terminal ("== title" otherwise,
-- or with NO_COLOR), and indented explanations. Flushed at once, so it interleaves with
-- the output of the commands the demo runs.
local proc = require "relua.proc"

local M = {}

local color = not os.getenv("NO_COLOR") and proc.isatty(1)

--- Writes s to stdout as it is.
function M.out(s)
  io.stdout:write(s)
  io.stdout:flush()
end

--- A step's title (string.format arguments).
function M.say(fmt, ...)
  local text = string.format(fmt, ...)
  M.out(color and ("\n\27[1m" .. text .. "\27[0m\n") or ("\n== " .. text .. "\n"))
end

--- Explanation lines, indented.
function M.tell(...)
  for _, line in ipairs({ ... }) do M.out("   " .. line .. "\n") end
end

return M
