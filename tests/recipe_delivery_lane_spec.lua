-- The delivery lane recipe (recipes/delivery-lane.lua) end to end, with its playbooks
-- (playbooks/delivery-lane.lua): a bare remote served over smart HTTP
-- (tests/support/githttp.lua), a developer's clone that pushes to main,
-- the lane's workspace (a clone) where relua runs, and shell scripts standing in for CI,
-- the deploy target and the health check. Runs on each sandbox's folder store, or on the
-- store RELUA_TEST_STORE names (tests/run-all.sh runs it on PostgreSQL too).
local h = require "support.h"
local S = require "support.release"
local G = require "support.gitfix"
local githttp = require "support.githttp"
local json = require "relua.json"
local proc = require "relua.proc"

local RECIPE = h.root .. "/recipes/delivery-lane.lua"

-- CI: the result of $SHA is the file ci/$SHA ("fail" fails it; absent: green). With
-- CI_HOLD set, the check reads the result, says so (ci/held-TICKET) and waits for ci/go
-- before it reports it: a slow, stale worker.
local CI = [[
#!/bin/sh
D=$(dirname "$0")
result=pass
[ -f "$D/ci/$SHA" ] && result=$(cat "$D/ci/$SHA")
if [ -n "$CI_HOLD" ]; then
  : > "$D/ci/held-$RELUA_TICKET"
  while [ ! -f "$D/ci/go" ]; do sleep 0.05; done
fi
echo "ci $SHA: $result"
[ "$result" = pass ]
]]

-- The deploy target: refuses while target/down exists; else records the SHA it deployed.
local DEPLOY = [[
#!/bin/sh
D=$(dirname "$0")/target
if [ -f "$D/down" ]; then echo "deploy target unavailable: connection refused" >&2; exit 1; fi
echo "$SHA" >> "$D/deployed"
echo "$SHA" > "$D/current"
echo "deployed $SHA"
]]

-- The health check: unhealthy while target/unhealthy exists, or for as many checks as
-- target/starting says (each check counts one down); then the deployed SHA must be $SHA.
local VERIFY = [[
#!/bin/sh
D=$(dirname "$0")/target
if [ -f "$D/unhealthy" ]; then echo "✗ app.healthy: unhealthy"; exit 1; fi
n=$(cat "$D/starting" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$D/starting"; echo "✗ app.healthy: starting"; exit 1; fi
[ "$(cat "$D/current")" = "$SHA" ] || { echo "✗ app.version: got $(cat "$D/current"), expected $SHA"; exit 1; }
echo "ok app.healthy"
]]

local CHECK = [[
#!/bin/sh
[ ! -f "$(dirname "$0")/target/down" ]
]]

local srv
local repos = 0
local function serve() srv = srv or githttp.start({ user = "lane", password = "s3cret-lane" }) end
local function unserve()
  if srv then srv:stop() end
  srv = nil
end

-- A sandbox: the served remote, dev (pushes to main), ws (the lane's workspace), the scripts.
local function world()
  local s = S.sandbox()
  repos = repos + 1
  local name, dev = "lane" .. repos .. ".git", s.dir .. "/dev"
  srv:bare(name)
  s.remote = srv:repo_path(name)
  local url = srv:url(name)
  local authed = url:gsub("^http://", "http://" .. srv.user .. ":" .. srv.password .. "@")
  G.repo(dev)
  G.git(dev, "remote", "add", "origin", authed)
  G.git(dev, "push", "-q", "origin", "main")
  G.git(s.dir, "clone", "-q", authed, "ws")
  s.ws = s.dir .. "/ws"
  G.git(s.ws, "remote", "set-url", "origin", url)  -- relua fetches with RELUA_GIT_USERNAME/PASSWORD
  s.rel = s.ws .. "/.relua/releases"
  s:write("ci.sh", CI)
  s:write("deploy.sh", DEPLOY)
  s:write("verify.sh", VERIFY)
  s:write("check.sh", CHECK)
  os.execute("chmod +x " .. h.quote(s.dir) .. "/*.sh && mkdir -p " .. h.quote(s.dir) .. "/ci " .. h.quote(s.dir) .. "/target")
  s.env = {
    LANE_CI = s.dir .. "/ci.sh", LANE_DEPLOY = s.dir .. "/deploy.sh", LANE_VERIFY = s.dir .. "/verify.sh",
    LANE_DEPLOY_CHECK = s.dir .. "/check.sh", LANE_VERIFY_TRIES = "2", LANE_VERIFY_DELAY = "0.05",
    LANE_VERIFY_WAIT = "2", RELUA_BY = "lane-bot", RELUA_PLAYBOOKS = false,
    RELUA_GIT_USERNAME = srv.user, RELUA_GIT_PASSWORD = srv.password, RELUA_GIT_TOKEN = false,
  }
  -- A commit pushed to main; returns its SHA.
  function s.push(msg, file, content)
    local sha = G.commit(dev, msg, file or "app.txt", content or (msg .. "\n"))
    G.git(dev, "push", "-q", "origin", "main")
    return sha
  end
  s.A = s.push("feature A")
  return s
end

local function run_env(s, extra)
  local e = { RELUA_HOME = false, RELUA_TEST_CRASH_AT = false, RELUA_STORE = s.store_url or false }
  for k, v in pairs(s.env) do e[k] = v end
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- Runs relua in the workspace: {code=, stdout=, stderr=}.
local function relua(s, args, extra)
  local parts = { h.quote(S.bin()) }
  for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
  return h.sh(table.concat(parts, " "), { cwd = s.ws, env = run_env(s, extra) })
end

local function lane(s, args, extra)
  local argv = { RECIPE }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return relua(s, argv, extra)
end

local function controls(s)
  local r = relua(s, { "controls", "--json" })
  assert.are.equal(0, r.code, r.stderr)
  return assert(json.decode(r.stdout))
end

local function lines(s, name)
  local out = {}
  for l in s:read(name):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function wait_for(s, name)
  for _ = 1, 3000 do
    if s:exists(name) then return end
    proc.sleep(0.02)
  end
  error("timed out waiting for " .. name)
end

describe("recipes/delivery-lane.lua", function()
  setup(serve)
  teardown(unserve)
  after_each(function() S.cleanup() G.cleanup() end)

  it("releases main's head: pins it, checks CI, deploys and verifies; a re-run does nothing", function()
    local s = world()
    local r = lane(s, { "T1" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("release T1 done: all 4 phases done", r.stdout, 1, true)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
    local st = s:state("T1")
    assert.are.equal(s.A, st.state.SHA)
    assert.are.equal(s.A, st.state.DEPLOYED)
    assert.are.equal(s.A, G.git(s.ws, "rev-parse", "HEAD"))
    assert.matches("releasing " .. s.A, s:log_text("T1"), 1, true)
    -- nothing paused the lane
    assert.are.same({}, controls(s).history)
    r = lane(s, { "T1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("nothing to do", r.stdout, 1, true)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
  end)

  it("refuses to start without LANE_DEPLOY (pre-flight, exit 2), nothing run", function()
    local s = world()
    local r = lane(s, { "T1" }, { LANE_DEPLOY = false })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("set LANE_DEPLOY to the command that deploys $SHA", r.stdout .. r.stderr, 1, true)
    assert.is_false(s:exists("target/deployed"))
  end)

  it("the health check's bounded retry passes a service that comes up on the second try", function()
    local s = world()
    s:write("target/starting", "1\n")
    local r = lane(s, { "T1" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("passed on try 2 of 2", r.stdout, 1, true)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
  end)
end)

describe("recipes/delivery-lane.lua: a failure pauses the lane", function()
  setup(serve)
  teardown(unserve)
  after_each(function() S.cleanup() G.cleanup() end)

  it("CI fails: the lane is paused for the SHA; runs are refused (exit 3); the unpause admits the repair", function()
    local s = world()
    local A = s.A
    s:write("ci/" .. A, "fail")
    local r = lane(s, { "T1" })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("CI failed on " .. A, r.stderr, 1, true)
    assert.matches("relua unpause --lane main --sha " .. A .. " --reason ci-failed", r.stderr, 1, true)
    assert.matches("lane main paused: SHA " .. A .. ", reason ci-failed", r.stdout, 1, true)
    local c = controls(s)
    assert.are.equal("paused", c.state)
    assert.are.equal(A, c.pauses[1].sha)
    assert.are.equal("ci-failed", c.pauses[1].reason)
    assert.are.equal("T1", c.pauses[1].ticket)
    assert.are.equal("lane-bot", c.pauses[1].by)
    assert.is_false(s:exists("target/deployed"))

    -- while paused: a new ticket and a re-run of the failed one are refused, exit 3
    r = lane(s, { "T2" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("lane main is paused: ci-failed", r.stderr, 1, true)
    r = lane(s, { "T1" })
    assert.are.equal(3, r.code, r.stderr)
    assert.are.equal("failed", s:statuses("T1").ci)

    -- the repair lands on main; the unpause records the recovery; the repair is admitted
    r = relua(s, { "unpause", "--sha", A, "--reason", "ci-failed", "--by", "alice", "--no-wake" })
    assert.are.equal(0, r.code, r.stderr)
    -- main's head still the failed SHA: refused
    r = lane(s, { "T2" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("is the failed SHA itself", r.stderr, 1, true)
    local B = s.push("fix A")
    r = lane(s, { "T2" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ B }, lines(s, "target/deployed"))
    assert.matches(" event=run .*lane=main .*sha=" .. B, s:log_text("T2"))
    assert.are.equal("running", controls(s).state)
  end)

  it("the failed ticket follows main to the repair with --from=pin", function()
    local s = world()
    local A = s.A
    s:write("ci/" .. A, "fail")
    assert.are.equal(1, lane(s, { "T1" }).code)
    local B = s.push("fix A")
    assert.are.equal(0, relua(s, { "unpause", "--sha", A, "--reason", "ci-failed", "--no-wake" }).code)
    local r = lane(s, { "T1", "--from=pin" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("following origin/main: " .. A .. " -> " .. B, r.stdout, 1, true)
    local st = s:state("T1")
    assert.are.equal(B, st.state.SHA)
    assert.are.same({ A }, st.state.EARLIER_SHAS)
    assert.are.same({ B }, lines(s, "target/deployed"))
  end)

  it("keeps the lane resumed when a stale run restates the recovered failure, and admits the repair", function()
    local s = world()
    local A = s.A
    s:write("ci/" .. A, "fail")
    -- a stale worker: a run of the lane started on A before anything failed, whose CI
    -- check read A's failure and is slow to report it
    local argv = { S.bin(), RECIPE, "T0" }
    local stale <close> = assert(proc.spawn(argv, { cwd = s.ws, timeout = 120, env = run_env(s, { CI_HOLD = "1" }) }))
    wait_for(s, "ci/held-T0")

    -- the release of A fails and pauses the lane
    local r = lane(s, { "T1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.are.equal("paused", controls(s).state)
    -- the operator unpauses (the repair is not pushed yet)
    r = relua(s, { "unpause", "--sha", A, "--reason", "ci-failed", "--by", "alice", "--no-wake" })
    assert.are.equal(0, r.code, r.stderr)

    -- the stale worker now reports A's failure and pauses: ignored, the lane stays resumed
    s:write("ci/go", "")
    local w = stale:wait()
    assert.are.equal(1, w.code, w.stdout .. w.stderr)
    assert.matches("lane main not paused again: restates the failure the unpause by alice", w.stdout, 1, true)
    local c = controls(s)
    assert.are.equal("running", c.state)
    assert.are.equal(A, c.recovery.sha)
    local last = c.history[#c.history]
    assert.are.equal("ignored", last.effect)
    assert.are.equal("T0", last.record.ticket)
    assert.matches("event=control .*effect=ignored .*kind=pause", s:log_text("T0"))

    -- the repair is admitted and released
    local B = s.push("fix A")
    r = lane(s, { "T2" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ B }, lines(s, "target/deployed"))
  end)

  it("a new failure on the repair pauses the lane again", function()
    local s = world()
    s:write("ci/" .. s.A, "fail")
    assert.are.equal(1, lane(s, { "T1" }).code)
    assert.are.equal(0, relua(s, { "unpause", "--sha", s.A, "--reason", "ci-failed", "--no-wake" }).code)
    local B = s.push("fix A, badly")
    s:write("target/down", "")
    local r = lane(s, { "T2" })
    assert.are.equal(1, r.code, r.stderr)
    local c = controls(s)
    assert.are.equal("paused", c.state)
    assert.are.equal(B, c.pauses[1].sha)
    assert.are.equal("deploy-failed", c.pauses[1].reason)
  end)
end)

describe("recipes/delivery-lane.lua: a failure at each phase, then a re-run converges", function()
  setup(serve)
  teardown(unserve)
  after_each(function() S.cleanup() G.cleanup() end)

  it("pin: the remote is unreachable; nothing is paused (no SHA yet); the re-run releases", function()
    local s = world()
    os.rename(s.remote, s.remote .. ".away")
    local r = lane(s, { "T1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("phase pin failed", r.stderr, 1, true)
    assert.are.same({}, controls(s).history)
    os.rename(s.remote .. ".away", s.remote)
    r = lane(s, { "T1" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
  end)

  it("ci: a wrong CI result is corrected; unpause wakes the ticket, which completes", function()
    local s = world()
    s:write("ci/" .. s.A, "fail")
    assert.are.equal(1, lane(s, { "T1" }).code)
    os.remove(s:path("ci/" .. s.A))
    local r = relua(s, { "unpause", "--sha", s.A, "--reason", "ci-failed", "--timeout", "60" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("wake: ticket T1 resumed and done", r.stdout, 1, true)
    assert.are.same({ pin = "done", ci = "done", deploy = "done", verify = "done" }, s:statuses("T1"))
    assert.are.same({ s.A }, lines(s, "target/deployed"))
  end)

  it("deploy: the target is down; once it is back the unpause's wake deploys once", function()
    local s = world()
    s:write("target/down", "")
    local r = lane(s, { "T1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("deploy target unavailable", r.stderr, 1, true)
    assert.are.equal("deploy-failed", controls(s).pauses[1].reason)
    os.remove(s:path("target/down"))
    r = relua(s, { "unpause", "--sha", s.A, "--reason", "deploy-failed", "--timeout", "60" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
    assert.are.equal("done", s:statuses("T1").verify)
  end)

  it("verify: unhealthy after every try; pauses; fixed, the resume verifies without deploying again", function()
    local s = world()
    s:write("target/unhealthy", "")
    local r = lane(s, { "T1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("exit 1 on try 1 of 2; next try in 0.05s", r.stdout, 1, true)
    assert.are.equal("verify-failed", controls(s).pauses[1].reason)
    os.remove(s:path("target/unhealthy"))
    r = relua(s, { "unpause", "--sha", s.A, "--reason", "verify-failed", "--timeout", "60" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
    assert.are.equal("done", s:statuses("T1").verify)
  end)
end)

describe("recipes/delivery-lane.lua: its playbooks", function()
  setup(serve)
  teardown(unserve)
  after_each(function() S.cleanup() G.cleanup() end)

  -- diagnose names the playbook (confirmed), recover --yes unpauses and completes
  local function recovered(s, id, extra)
    local d = relua(s, { "diagnose", "T1" }, extra)
    assert.are.equal(0, d.code, d.stderr)
    assert.matches("1. " .. id .. " [confirmed]", d.stdout, 1, true)
    local r = relua(s, { "recover", "T1", "--yes" }, extra)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("playbook " .. id .. ": verified", r.stdout, 1, true)
    assert.matches("release T1 done", r.stdout, 1, true)
    assert.are.equal("running", controls(s).state)
    assert.matches("event=control .*effect=resumes .*kind=unpause", s:log_text("T1"))
    return r
  end

  it("lane-ci-failed: not confirmed until the repair is on main; then unpauses and follows main to it", function()
    local s = world()
    s:write("ci/" .. s.A, "fail")
    assert.are.equal(1, lane(s, { "T1" }).code)
    local d = relua(s, { "diagnose", "T1" })
    assert.are.equal(0, d.code, d.stderr)
    assert.matches("main's head is still the failed SHA " .. s.A, d.stdout, 1, true)
    local r = relua(s, { "recover", "T1", "--yes" })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.are.equal("paused", controls(s).state)
    local B = s.push("fix A")
    recovered(s, "lane-ci-failed")
    assert.are.equal(B, s:state("T1").state.SHA)
    assert.are.same({ B }, lines(s, "target/deployed"))
  end)

  it("lane-deploy-failed: the target is back; unpauses and deploys the same SHA", function()
    local s = world()
    s:write("target/down", "")
    assert.are.equal(1, lane(s, { "T1" }).code)
    local d = relua(s, { "diagnose", "T1" })
    assert.matches("the target still refuses", d.stdout, 1, true)
    os.remove(s:path("target/down"))
    recovered(s, "lane-deploy-failed")
    assert.are.same({ s.A }, lines(s, "target/deployed"))
  end)

  it("lane-verify-race: the service comes up after the tries; unpauses and verifies", function()
    local s = world()
    s:write("target/starting", "4\n")
    assert.are.equal(1, lane(s, { "T1" }).code)
    recovered(s, "lane-verify-race", { LANE_VERIFY_WAIT = "1" })
    assert.are.same({ s.A }, lines(s, "target/deployed"))
  end)

  it("--from=verify after the cause is fixed: verifies without deploying again", function()
    local s = world()
    s:write("target/unhealthy", "")
    assert.are.equal(1, lane(s, { "T1" }).code)
    os.remove(s:path("target/unhealthy"))
    assert.are.equal(0, relua(s, { "unpause", "--sha", s.A, "--reason", "verify-failed", "--no-wake" }).code)
    local r = lane(s, { "T1", "--from=verify" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ s.A }, lines(s, "target/deployed"))
    assert.are.equal("done", s:statuses("T1").verify)
  end)

  it("revert: nothing to undo before the deploy; refused past it (exit 3), the lane rolls forward", function()
    local s = world()
    s:write("ci/" .. s.A, "fail")
    assert.are.equal(1, lane(s, { "T1" }).code)
    local r = relua(s, { "revert", "T1" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("ci: has no revert", r.stdout, 1, true)
    -- a verify failure past the deploy: the hint says retry, and revert is refused
    local s2 = world()
    s2:write("target/unhealthy", "")
    r = lane(s2, { "T1" })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("past the point of no return", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("Roll back", 1, true))
    r = relua(s2, { "revert", "T1" })
    assert.are.equal(3, r.code, r.stdout .. r.stderr)
    assert.matches("phase deploy is past the point of no return", r.stdout .. r.stderr, 1, true)
    assert.are.same({ s2.A }, lines(s2, "target/deployed"))
    assert.are.equal("failed", s2:statuses("T1").verify)
  end)
end)
