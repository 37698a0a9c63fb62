-- The short form of `make crashtest` (tests/crash/sweep.lua): the same traced release, killed
-- at the first call of each kind (each durable write, network call and fork kind relua
-- makes: write, fsync, rename, link, connect, sendto, vfork...) and at the last write,
-- each followed by plain re-runs. The whole sweep tries every point.
local sweep = require "support.crashsweep"

describe("the crash sweep, short form #sweep", function()
  local env, points
  setup(function()
    env = sweep.setup(40)
    points = sweep.points(env)
  end)
  teardown(function() if env then env.stop() end end)

  it("resumes with plain re-runs after a kill at the first call of each kind and the last write", function()
    local chosen, seen, last_write = {}, {}, nil
    for i, pt in ipairs(points) do
      if not seen[pt.syscall] then seen[pt.syscall] = true chosen[#chosen + 1] = i end
      if pt.syscall == "write" then last_write = i end
    end
    chosen[#chosen + 1] = last_write
    assert.is_true(#chosen >= 8, "the traced release made too few kinds of calls")
    local failures = {}
    for k, i in ipairs(chosen) do
      local res = sweep.run_point(env, k, points[i])
      if not res.ok then
        failures[#failures + 1] = string.format("%s #%d: %s", points[i].syscall, points[i].n, res.why)
      end
    end
    print(string.format("\ncrash sweep (short): %d points tried, %d resumed with no manual step",
      #chosen, #chosen - #failures))
    assert.are.same({}, failures)
  end)
end)
