-- relua.registry.pypi on the local test index (tests/support/pypi_server.py):
--  1. verifying 200 already-published wheels (200 projects): `relua` running
--     pypi.publish_all (index reads with http.all, no upload sent) vs
--     `twine upload --skip-existing` of the same 200 files (which uploads each one and reads
--     the 409). Both are whole processes, as a user runs them; alternating rounds, medians.
--  2. the peak resident memory (VmHWM) of a relua process uploading a 1 GB wheel.
package.path = "tests/?.lua;" .. package.path
local proc = require "relua.proc"
local fs = require "relua.fs"
local reg = require "support.registries"

local ROUNDS = 3
local N = 200

local bench = require "benchlib"
local median = bench.median

local relua = arg and arg[-1] or "./relua"
if not relua:find("/") then relua = "./relua" end

local server = reg.pypi()
local dir = assert(fs.tmpdir("relua-registry-bench-"))
local ok, err = pcall(function()
  local pairs_ = {}
  for i = 1, N do
    pairs_[#pairs_ + 1] = string.format("bench-pkg-%03d", i)
    pairs_[#pairs_ + 1] = "1.0." .. i
  end
  local wheels = reg.build_dists(fs.join(dir, "wheels"), pairs_)
  assert(#wheels == N)
  local list = fs.join(dir, "wheels.txt")
  assert(fs.write(list, table.concat(wheels, "\n") .. "\n"))
  local script = fs.join(dir, "verify.lua")
  assert(fs.write(script, [[
    local pypi = require "relua.registry.pypi"
    local paths = {}
    for line in io.lines(arg[1]) do paths[#paths + 1] = line end
    local results = pypi.publish_all(paths, { url = arg[2], user = "relua" })
    local counts = {}
    for _, r in ipairs(results) do counts[r.status] = (counts[r.status] or 0) + 1 end
    print(string.format("published=%d skipped_existing=%d", counts.published or 0, counts.skipped_existing or 0))
  ]]))
  local env = { PYPI_TOKEN = server.password, RELUA_PROGRESS = "0" }

  -- Publish them once.
  local first = assert(proc.run({ relua, script, list, server.legacy }, { env = env, timeout = 600 }))
  assert(first.code == 0, "first publish failed: " .. first.stderr)
  assert(first.stdout:match("published=" .. N), first.stdout)

  local twine_argv = { "twine", "upload", "--non-interactive", "--disable-progress-bar", "--skip-existing",
                       "--repository-url", server.legacy }
  for _, w in ipairs(wheels) do twine_argv[#twine_argv + 1] = w end
  local twine_env = { TWINE_USERNAME = server.user, TWINE_PASSWORD = server.password, NO_COLOR = "1",
                      PYTHON_KEYRING_BACKEND = "keyring.backends.null.Keyring" }

  local ours, theirs = {}, {}
  for _ = 1, ROUNDS do
    local uploads = server.stats().uploads
    local t0 = proc.clock()
    local r = assert(proc.run({ relua, script, list, server.legacy }, { env = env, timeout = 600 }))
    ours[#ours + 1] = proc.clock() - t0
    assert(r.code == 0 and r.stdout:match("skipped_existing=" .. N), "relua verify failed: " .. r.stdout .. r.stderr)
    assert(server.stats().uploads == uploads, "relua sent an upload while verifying")
    t0 = proc.clock()
    local t = assert(proc.run(twine_argv, { env = twine_env, timeout = 900 }))
    theirs[#theirs + 1] = proc.clock() - t0
    assert(t.code == 0, "twine failed: " .. t.stdout .. t.stderr)
  end
  local a, b = median(ours), median(theirs)
  local speedup = b / a
  print(string.format("verify %d published wheels: relua publish %.0f ms vs twine upload --skip-existing %.0f ms: "
    .. "speedup %.1fx (target >= 5x, goal 10x) %s", N, a * 1000, b * 1000, speedup,
    speedup >= 10 and "ok (goal met)" or speedup >= 5 and "ok" or "under target"))

  -- 2. Peak memory of a 1 GB upload.
  local size = 1024 * 1024 * 1024
  local big = reg.build_dists(fs.join(dir, "big"), { "bench-big", "1.0" }, { payload = size })[1]
  local big_script = fs.join(dir, "big.lua")
  assert(fs.write(big_script, [[
    local pypi = require "relua.registry.pypi"
    local proc = require "relua.proc"
    local t0 = proc.clock()
    local r = pypi.publish(arg[1], { url = arg[2], user = "relua", timeout = 900 })
    local status = io.open("/proc/self/status"):read("a")
    print(string.format("status=%s hwm_kb=%s seconds=%.1f", r.status, status:match("VmHWM:%s*(%d+)"), proc.clock() - t0))
  ]]))
  local idle_script = fs.join(dir, "idle.lua")
  assert(fs.write(idle_script, [[
    require "relua.registry.pypi"
    print("hwm_kb=" .. io.open("/proc/self/status"):read("a"):match("VmHWM:%s*(%d+)"))
  ]]))
  local idle = assert(proc.run({ relua, idle_script }, { env = env }))
  local idle_kb = tonumber(idle.stdout:match("hwm_kb=(%d+)"))
  local r = assert(proc.run({ relua, big_script, big, server.legacy }, { env = env, timeout = 900 }))
  assert(r.code == 0, "1 GB upload failed: " .. r.stderr)
  local kb, secs = r.stdout:match("hwm_kb=(%d+) seconds=([%d.]+)")
  kb = tonumber(kb)
  print(string.format("1 GB upload: relua peak RSS %.1f MB (relua idle %.1f MB; %s s incl. digests): "
    .. "target < 30 MB %s", kb / 1024, idle_kb / 1024, secs, kb < 30 * 1024 and "ok" or "over"))
end)
server.stop()
fs.remove(dir, { recursive = true })
if not ok then error(err, 0) end
