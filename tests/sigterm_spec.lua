-- SIGTERM (a cancelled CI job, a service manager stopping relua) interrupts like Ctrl-C,
-- with exit status 143: the phase is recorded failed rc=143 and the lock is released.
local h = require "support.h"

local function bin()
  return h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin:gsub("^%./", "")
end

describe("SIGTERM", function()
  after_each(h.cleanup)

  it("stops a busy loop with a clean error and exit 143", function()
    local r = h.sh(h.quote(bin()) .. " -e 'while true do end' & pid=$!; sleep 0.3; kill -TERM $pid; wait $pid")
    assert.are.equal(143, r.code)
    assert.are.equal("relua: terminated (SIGTERM)\n", r.stderr)
  end)

  it("fails the running phase with rc=143, releases the lock, and the release resumes", function()
    local d = h.tmpdir()
    h.spit(d .. "/rec.lua", [[
      local fs = require "relua.fs"
      return { phases = {
        { name = "deploy", run = function(r)
            if not fs.exists("go") then r:sh("sleep 100") end
          end },
        { name = "verify", run = function() end },
      } }
    ]])
    local r = h.sh(h.quote(bin()) .. [[ rec.lua T1 >out 2>err & pid=$!
      for i in $(seq 100); do grep -q 'phase=deploy event=start' .relua/releases/T1.log 2>/dev/null && break; sleep 0.05; done
      sleep 0.2; kill -TERM $pid; wait $pid]], { cwd = d })
    assert.are.equal(143, r.code)
    local err = h.slurp(d .. "/err")
    assert.matches("release interrupted in phase deploy %(rc=143%)%. Resume: relua rec%.lua T1 %-%-from=deploy%.", err)
    assert.matches("event=failed rc=143", h.slurp(d .. "/.relua/releases/T1.log"))
    assert.is_nil(h.sh("pgrep -f 'sleep 100' -P 1").stdout:match("%d"), "sleep was left running")
    h.spit(d .. "/go", "")
    local again = h.relua({ "rec.lua", "T1" }, { cwd = d })   -- not refused: the lock is free
    assert.are.equal(0, again.code, again.stderr)
    assert.matches("phase deploy: done", again.stdout)
  end)
end)
