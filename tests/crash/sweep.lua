-- `make crashtest`: the whole crash sweep (tests/support/crashsweep.lua). Every point of
-- one traced release, each followed by plain re-runs; prints each failure and the figure
-- "N points tried, N resumed with no manual step". Exit 1 unless all resumed.
-- usage: RELUA_BIN=./relua ./relua tests/crash/sweep.lua [EVERY]   (EVERY: try every k-th point)
package.path = "tests/?.lua;" .. package.path
local sweep = require "support.crashsweep"

local every = tonumber((...)) or tonumber(os.getenv("CRASH_EVERY")) or 1
local env = sweep.setup(2000)          -- artifacts for up to 2000 points
local ok, err = pcall(function()
  local points, counts = sweep.points(env)
  local kinds = {}
  for name, n in pairs(counts) do kinds[#kinds + 1] = name .. "=" .. n end
  table.sort(kinds)
  print(string.format("crash sweep: %d points in one release (%s); trying every %d", #points,
    table.concat(kinds, " "), every))
  assert(#points < #env.wheels, "more points than artifacts: raise sweep.setup's count")
  local tried, resumed, bad = 0, 0, {}
  for i = 1, #points, every do
    local pt = points[i]
    local res = sweep.run_point(env, i, pt)
    tried = tried + 1
    if res.ok then resumed = resumed + 1
    else
      bad[#bad + 1] = string.format("%s #%d: %s", pt.syscall, pt.n, res.why)
      print("FAILED at " .. bad[#bad])
    end
    if tried % 25 == 0 then print(string.format("  %d/%d points tried, %d resumed", tried, math.ceil(#points / every), resumed)) end
  end
  print(string.format("crash sweep: %d points tried, %d resumed with no manual step (%.1f%%)", tried, resumed,
    100 * resumed / math.max(tried, 1)))
  if resumed ~= tried then error(#bad .. " points did not resume", 0) end
end)
env.stop()
if not ok then
  io.stderr:write("crash sweep: ", tostring(err), "\n")
  os.exit(1)
end
