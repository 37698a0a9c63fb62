-- Ports for the test servers on 127.0.0.1.
local fs = require "relua.fs"

local M = {}

--- Is something listening on 127.0.0.1:port? (/proc/net/tcp, state 0A = LISTEN)
function M.listening(port)
  local want = string.format(":%04X", port)
  for line in (fs.read("/proc/net/tcp") or ""):gmatch("[^\n]+") do
    local loc, state = line:match("^%s*%d+:%s+(%x+:%x+)%s+%x+:%x+%s+(%x+)")
    if loc and state == "0A" and loc:sub(-5) == want then return true end
  end
  return false
end

return M
