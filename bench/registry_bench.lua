-- The registry clients (relua.publish and its adapters) on the local test registries:
--  1. verifying 200 already-published wheels (200 projects): `relua` running
--     pypi.publish_all (index reads with http.all, no upload sent) vs
--     `twine upload --skip-existing` of the same 200 files (which uploads each one and reads
--     the 409). Both are whole processes, as a user runs them; alternating rounds, medians.
--     Against the test index, and against one with Python socketserver's listen backlog of
--     5 (connections per host are bounded and reused, so no SYN is dropped). Target >= 20x.
--     The index answers a read it has answered before from its cache (emptied by every
--     upload), as pypi.org's CDN does, so the reads cost it little more than the syscalls.
--     One round of each side first, not counted (caches warm, as on a second run in CI),
--     then ROUNDS alternating rounds; medians.
--     The wall clock of this comparison measures the machine as much as the clients: relua's
--     reads are 200 round trips over 4 connections, so on a loaded machine each one waits
--     for the scheduler (for the index's thread and for relua) and the time is latency, not
--     work. So each run is also reported against two measures that do not depend on the
--     load: the index's own floor (curl --parallel with the same 4 connections and the same
--     200 reads: the same server cost and the same waits, so relua / floor shows what relua
--     adds; twine / floor is the most any client could reach on this index), and the CPU
--     work (the client's and the index's) of each side.
--  2. the integrities of 20 published npm packages (verdaccio): one relua process reading
--     them at once (npm.dists) vs 20 `npm view NAME@VERSION dist.integrity`. Target >= 50x.
--  3. a 1 GB upload: the peak resident memory (VmHWM, < 30 MB) and how many times the file
--     is read (/proc/self/io rchar: once for all its digests, once by the upload).
package.path = "tests/?.lua;" .. package.path
local proc = require "relua.proc"
local fs = require "relua.fs"
local reg = require "support.registries"

local ROUNDS = 5      -- the PyPI comparison (a few seconds a round)
local NPM_ROUNDS = 3  -- the npm one (20 `npm view` runs, about 10 s a round)
local N = 200

local bench = require "benchlib"
local median = bench.median

local relua = arg and arg[-1] or "./relua"
if not relua:find("/") then relua = "./relua" end

local server = reg.pypi()
local small = reg.pypi({ backlog = 5 })
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
    print(string.format("published=%d skipped_existing=%d cpu=%.4f", counts.published or 0,
      counts.skipped_existing or 0, os.clock()))
  ]]))

  -- The index's CPU time (user + system, all its threads, s) from /proc/PID/stat.
  local function index_cpu(idx)
    local pid = idx.pid or io.popen("pgrep -f -- " .. proc.quote("--storage " .. idx.storage)):read("l")
    idx.pid = pid
    local f = pid and io.open("/proc/" .. pid .. "/stat")
    if not f then return 0 end
    local fields = {}
    for x in f:read("a"):match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = x end
    f:close()
    return (tonumber(fields[12]) + tonumber(fields[13])) / 100
  end
  -- The floor: the same reads by curl, 4 connections kept alive, nothing else.
  local curl_cfg = fs.join(dir, "curl.cfg")
  local function write_curl_cfg(idx)
    local cfg = {}
    for i = 1, N do
      cfg[i] = string.format('url = "%sbench-pkg-%03d/"\noutput = "/dev/null"', idx.index, i)
    end
    assert(fs.write(curl_cfg, table.concat(cfg, "\n") .. "\n"))
  end

  for _, srv in ipairs({ { server, "the test index" }, { small, "an index with a listen backlog of 5" } }) do
    local idx, label = srv[1], srv[2]
    write_curl_cfg(idx)
    local env = { PYPI_TOKEN = idx.password, RELUA_PROGRESS = "0", RELUA_LOG_LEVEL = "warn" }
    -- Publish them once.
    local first = assert(proc.run({ relua, script, list, idx.legacy }, { env = env, timeout = 600 }))
    assert(first.code == 0, "first publish failed: " .. first.stderr)
    assert(first.stdout:match("published=" .. N), first.stdout)

    local twine_argv = { "/usr/bin/time", "-f", "cpu=%U+%S", "twine", "upload", "--non-interactive", "--disable-progress-bar", "--skip-existing",
                         "--repository-url", idx.legacy }
    for _, w in ipairs(wheels) do twine_argv[#twine_argv + 1] = w end
    local twine_env = { TWINE_USERNAME = idx.user, TWINE_PASSWORD = idx.password, NO_COLOR = "1",
                        PYTHON_KEYRING_BACKEND = "keyring.backends.null.Keyring" }

    local ours, theirs, conns, floors, our_cpu, their_cpu = {}, {}, {}, {}, {}, {}
    -- The warm-up round: each side once, not counted.
    local w = assert(proc.run({ relua, script, list, idx.legacy }, { env = env, timeout = 600 }))
    assert(w.code == 0 and w.stdout:match("skipped_existing=" .. N), "relua verify failed: " .. w.stdout .. w.stderr)
    w = assert(proc.run(twine_argv, { env = twine_env, timeout = 900 }))
    assert(w.code == 0, "twine failed: " .. w.stdout .. w.stderr)
    for _ = 1, ROUNDS do
      local before, c0 = idx.stats(), index_cpu(idx)
      local t0 = proc.clock()
      local r = assert(proc.run({ relua, script, list, idx.legacy }, { env = env, timeout = 600 }))
      ours[#ours + 1] = proc.clock() - t0
      our_cpu[#our_cpu + 1] = tonumber(r.stdout:match("cpu=([%d.]+)")) + index_cpu(idx) - c0
      assert(r.code == 0 and r.stdout:match("skipped_existing=" .. N), "relua verify failed: " .. r.stdout .. r.stderr)
      local after = idx.stats()
      assert(after.uploads == before.uploads, "relua sent an upload while verifying")
      conns[#conns + 1] = after.connections - before.connections
      t0 = proc.clock()
      local c = assert(proc.run({ "curl", "-s", "-H", "Accept: application/vnd.pypi.simple.v1+json",
        "-w", "%{http_code}\n", "--parallel", "--parallel-max", "4", "-K", curl_cfg },
        { timeout = 600 }))
      floors[#floors + 1] = proc.clock() - t0
      assert(c.code == 0 and select(2, c.stdout:gsub("200\n", "")) == N, "curl failed: " .. c.stdout .. c.stderr)
      c0 = index_cpu(idx)
      t0 = proc.clock()
      local t = assert(proc.run(twine_argv, { env = twine_env, timeout = 900 }))
      theirs[#theirs + 1] = proc.clock() - t0
      assert(t.code == 0, "twine failed: " .. t.stdout .. t.stderr)
      local u, s = t.stderr:match("cpu=([%d.]+)%+([%d.]+)")
      their_cpu[#their_cpu + 1] = tonumber(u) + tonumber(s) + index_cpu(idx) - c0
    end
    local a, b = median(ours), median(theirs)
    local speedup = b / a
    print(string.format("verify %d published wheels on %s: relua %.0f ms (%d connections) vs twine upload --skip-existing %.0f ms: "
      .. "speedup %.1fx (target >= 20x) %s", N, label, a * 1000, median(conns), b * 1000, speedup,
      speedup >= 20 and "ok" or "under target"))
    local floor = median(floors)
    local work = median(their_cpu) / median(our_cpu)
    print(string.format("  the same reads by curl (4 connections): %.0f ms: relua / floor %.2f (the ceiling, twine / floor: "
      .. "%.1fx); CPU work (client + index): relua %.0f ms, twine %.0f ms: %.1fx (target >= 20x) %s", floor * 1000, a / floor,
      b / floor, median(our_cpu) * 1000, median(their_cpu) * 1000, work, work >= 20 and "ok" or "under target"))
  end

  -- 2. npm integrities: one relua process (npm.dists, reads at once) vs 20 `npm view` runs.
  local verdaccio = reg.verdaccio()
  local npm_ok, npm_err = pcall(function()
    local specs = {}
    for i = 1, 20 do specs[i] = { manifest = { name = string.format("bench-npm-%02d", i), version = "1.0." .. i } } end
    local tarballs = reg.npm_pack(fs.join(dir, "npm"), specs)
    local pub = fs.join(dir, "npm-publish.lua")
    assert(fs.write(pub, [[
      local npm = require "relua.registry.npm"
      for i = 2, #arg do npm.publish(arg[i], { registry = arg[1] }) end
    ]]))
    local argv = { relua, pub, verdaccio.url }
    for _, t in ipairs(tarballs) do argv[#argv + 1] = t end
    local nenv = { NPM_TOKEN = verdaccio.token, RELUA_LOG_LEVEL = "warn", RELUA_PROGRESS = "0" }
    local p = assert(proc.run(argv, { env = nenv, timeout = 300 }))
    assert(p.code == 0, "npm publish failed: " .. p.stderr)
    local read = fs.join(dir, "npm-read.lua")
    assert(fs.write(read, [[
      local npm = require "relua.registry.npm"
      local items = {}
      for i = 1, 20 do items[i] = { name = string.format("bench-npm-%02d", i), version = "1.0." .. i } end
      local n = 0
      for _, d in ipairs(npm.dists(items, { registry = arg[1] })) do
        if d.dist and d.dist.integrity then n = n + 1 end
      end
      print("integrities=" .. n)
    ]]))
    local npmrc = fs.join(dir, "npmrc")
    assert(fs.write(npmrc, "registry=" .. verdaccio.url .. "\n"))
    local view_env = { npm_config_userconfig = npmrc, npm_config_update_notifier = "false", npm_config_fund = "false",
                       npm_config_audit = "false", npm_config_cache = fs.join(dir, "npm-cache"), npm_config_prefer_online = "true",
                       NPM_TOKEN = false }
    -- Public packages: neither side sends a token to read (verdaccio checks a token with
    -- bcrypt on every request, which would measure verdaccio, not the clients).
    local renv = { NPM_TOKEN = false, RELUA_LOG_LEVEL = "warn", RELUA_PROGRESS = "0", HOME = dir }
    local ours, theirs = {}, {}
    for _ = 1, NPM_ROUNDS do
      local t0 = proc.clock()
      local r = assert(proc.run({ relua, read, verdaccio.url }, { env = renv, timeout = 120 }))
      ours[#ours + 1] = proc.clock() - t0
      assert(r.code == 0 and r.stdout:match("integrities=20"), "relua npm read failed: " .. r.stdout .. r.stderr)
      t0 = proc.clock()
      for i = 1, 20 do
        local v = assert(proc.run({ "npm", "view", string.format("bench-npm-%02d@1.0.%d", i, i), "dist.integrity" },
          { env = view_env, timeout = 120 }))
        assert(v.code == 0 and v.stdout:match("^sha512%-"), "npm view failed: " .. v.stdout .. v.stderr)
      end
      theirs[#theirs + 1] = proc.clock() - t0
    end
    local a, b = median(ours), median(theirs)
    print(string.format("read 20 npm integrities: relua %.0f ms vs 20 npm view %.0f ms: speedup %.1fx (target >= 50x) %s",
      a * 1000, b * 1000, b / a, b / a >= 50 and "ok" or "under target"))
  end)
  verdaccio.stop()
  if not npm_ok then error(npm_err, 0) end
  local env = { PYPI_TOKEN = server.password, RELUA_PROGRESS = "0" }

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
    local rchar = io.open("/proc/self/io"):read("a"):match("rchar:%s*(%d+)")
    print(string.format("status=%s hwm_kb=%s seconds=%.1f rchar=%s", r.status, status:match("VmHWM:%s*(%d+)"), proc.clock() - t0, rchar))
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
  local kb, secs, rchar = r.stdout:match("hwm_kb=(%d+) seconds=([%d.]+) rchar=(%d+)")
  kb = tonumber(kb)
  -- reads of the file: the bytes read by the process over the file's size, less the upload's one
  local reads = tonumber(rchar) / fs.stat(big).size - 1
  print(string.format("1 GB upload: relua peak RSS %.1f MB (relua idle %.1f MB; %s s incl. digests): "
    .. "target < 30 MB %s; the file is read %.2f times for its digests (target 1) %s", kb / 1024, idle_kb / 1024, secs,
    kb < 30 * 1024 and "ok" or "over", reads, reads < 1.5 and "ok" or "over"))
end)
server.stop()
small.stop()
fs.remove(dir, { recursive = true })
if not ok then error(err, 0) end
