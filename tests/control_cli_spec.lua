-- Delivery controls with real processes, a real git repository and the relua binary:
-- the seed's stale re-pause race (../shared/seeds/004), new failures, 20 concurrent
-- writers, the wake, admission and bad input. Runs on each sandbox's folder store, or on
-- the store RELUA_TEST_STORE names (support.release); #folder specs read the folder's files.
local S = require "support.release"
local G = require "support.gitfix"
local json = require "relua.json"
local proc = require "relua.proc"

local function esc(s) return (s:gsub("%p", "%%%0")) end

-- The release: phase ci reads the CI result of the release SHA (a file ci-SHA holding the
-- failure's reason) and, on a failure, pauses the lane from inside the run and fails;
-- phase deploy fails while the file `broken` exists (pausing with reason deploy-failed),
-- sleeps while `slow` exists, and records the deployed SHA.
local RECIPE = [[
local control = require "relua.control"
local git = require "relua.git"
local function head()
  local repo <close> = assert(git.discover("."))
  return repo:head().id
end
local function exists(p) local f = io.open(p) if f then f:close() return true end end
return {
  name = "app", lane = "main",
  phases = {
    { name = "ci", run = function(r)
        r.state.SHA = head()
        local f = io.open("ci-" .. r.state.SHA)
        if f then
          local why = f:read("l") f:close()
          control.pause({ lane = "main", sha = r.state.SHA, reason = why, by = "ci-bot", r = r })
          error("CI failed on " .. r.state.SHA .. ": " .. why)
        end
      end },
    { name = "deploy", run = function(r)
        if exists("broken") then
          control.pause({ sha = r.state.SHA, reason = "deploy-failed", by = "deploy-bot", r = r })
          error("deploy failed")
        end
        if exists("slow") then require("relua.proc").sleep(60) end
        local f = assert(io.open("deployed.txt", "a")) f:write(r.state.SHA, "\n") f:close()
      end },
  },
}
]]

-- The stale worker: a coordinator that read the CI result of SHA A before the unpause,
-- then (told to go) writes the pause that result implies, exactly as it read it.
local WORKER = [[
local sha, ticket = ...
local f = assert(io.open("ci-" .. sha)) local why = f:read("l") f:close()
local g = assert(io.open("worker-ready", "w")) g:close()
while not io.open("worker-go") do require("relua.proc").sleep(0.02) end
local res = require("relua.control").pause({ lane = "main", sha = sha, reason = why, by = "stale-worker", ticket = ticket })
print("stale pause: " .. res.effect)
]]

local function sandbox()
  local s = S.sandbox()
  s:write(".gitignore", ".relua/\nci-*\nworker-*\ndeployed.txt\nbroken\nslow\n")
  s:write("release.lua", RECIPE)
  s:write("worker.lua", WORKER)
  G.repo(s.dir)
  s.A = G.commit(s.dir, "feature", "app.txt", "v1\n")
  return s
end

-- Starts relua in the sandbox without waiting, with the environment s:relua gives it.
local function spawn(s, args)
  local argv = { S.bin() }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local env = { RELUA_HOME = false, RELUA_TEST_CRASH_AT = false, RELUA_STORE = s.store_url or false }
  return assert(proc.spawn(argv, { cwd = s.dir, timeout = 120, env = env }))
end

local function controls(s, lane)
  local r = s:relua({ "controls", "--lane", lane or "main", "--json" })
  assert.are.equal(0, r.code, r.stderr)
  return assert(json.decode(r.stdout))
end

local function wait_for(s, name)
  for _ = 1, 1500 do
    if s:exists(name) then return end
    proc.sleep(0.02)
  end
  error("timed out waiting for " .. name)
end

describe("relua controls: the stale re-pause race", function()
  after_each(function() S.cleanup() G.cleanup() end)

  it("keeps the lane resumed when a stale worker restates the recovered failure, and admits the repair", function()
    local s = sandbox()
    local A = s.A
    s:write("ci-" .. A, "ci-failed")

    -- 1. the release fails on SHA A and pauses the lane
    local r = s:relua({ "release.lua", "T1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("CI failed on " .. A, r.stderr)
    local c = controls(s)
    assert.are.equal("paused", c.state)
    assert.are.equal(A, c.pauses[1].sha)
    assert.are.equal("T1", c.pauses[1].ticket)

    -- a paused lane refuses a release: exit 3, the pause and the unpause command
    r = s:relua({ "release.lua", "T2" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("lane main is paused: ci-failed", r.stderr, 1, true)
    assert.matches(esc("SHA " .. A .. ', reason "ci-failed", by ci-bot at ') .. "%d%d%d%d%-", r.stderr)
    assert.matches("relua unpause --lane main --sha " .. A .. " --reason ci-failed", r.stderr, 1, true)

    -- 2. a stale worker starts and reads the CI result before the unpause
    local worker <close> = spawn(s, { "worker.lua", A, "T1" })
    wait_for(s, "worker-ready")

    -- 3. the operator unpauses with A's SHA and reason (the repair is not pushed yet)
    r = s:relua({ "unpause", "--lane", "main", "--sha", A, "--reason", "ci-failed", "--by", "alice", "--no-wake" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("lane main unpaused: recovery recorded for SHA " .. A, r.stdout, 1, true)

    -- 4. the stale worker writes the identical pause
    s:write("worker-go", "")
    local w = worker:wait()
    assert.are.equal(0, w.code, w.stderr)
    assert.matches("stale pause: ignored", w.stdout, 1, true)

    -- the lane stays resumed; the ignored pause is recorded with why
    c = controls(s)
    assert.are.equal("running", c.state)
    assert.are.equal(A, c.recovery.sha)
    assert.are.equal("ci-failed", c.recovery.reason)
    assert.are.equal(3, #c.history)
    local last = c.history[3]
    assert.are.equal("ignored", last.effect)
    assert.is_true(last.record.ignored)
    assert.are.equal("stale-worker", last.record.by)
    assert.matches("restates the failure the unpause by alice", last.record.why, 1, true)

    -- the failed SHA itself is still held by the recovery
    r = s:relua({ "release.lua", "T3" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("is the failed SHA itself", r.stderr, 1, true)

    -- 5. the repair on SHA B, a descendant of A, is admitted and completes
    local B = G.commit(s.dir, "fix the build", "app.txt", "v2\n")
    r = s:relua({ "release.lua", "T2" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("release T2 done", r.stdout, 1, true)
    assert.are.equal(B .. "\n", s:read("deployed.txt"))
    local run = s:log_lines("T2")
    assert.matches(" event=run .*lane=main .*sha=" .. B, table.concat(run, "\n"))

    -- every control change is in the affected ticket's audit log
    local log = table.concat(s:log_lines("T1"), "\n")
    assert.matches("event=control .*effect=pauses .*kind=pause", log)
    assert.matches("event=control .*by=alice .*effect=resumes .*kind=unpause", log)
    assert.matches("event=control .*by=stale%-worker .*effect=ignored .*kind=pause", log)

    -- relua status shows the lane's control
    r = s:relua({ "status", "T1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("control: lane main: running, recovering from SHA " .. A, r.stdout, 1, true)
  end)

  it("refuses a release of an unrelated SHA during the recovery", function()
    local s = sandbox()
    local A = s.A
    assert.are.equal(0, s:relua({ "pause", "--sha", A, "--reason", "ci-failed" }).code)
    assert.are.equal(0, s:relua({ "unpause", "--sha", A, "--reason", "ci-failed" }).code)
    G.git(s.dir, "checkout", "-q", "-b", "other", "HEAD~1")
    G.commit(s.dir, "elsewhere", "other.txt", "x\n")
    local r = s:relua({ "release.lua", "T4" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("does not descend from it", r.stderr, 1, true)
    -- unless the recovery says so
    assert.are.equal(0, s:relua({ "pause", "--sha", A, "--reason", "deploy-failed" }).code)
    assert.are.equal(0, s:relua({ "unpause", "--sha", A, "--reason", "deploy-failed", "--admit", "any" }).code)
    r = s:relua({ "release.lua", "T4" })
    assert.are.equal(0, r.code, r.stderr)
  end)
end)

describe("relua controls: the release SHA", function()
  after_each(function() S.cleanup() G.cleanup() end)

  it("is what the recipe's sha function returns, when it has one", function()
    local s = sandbox()
    local A = s.A
    assert.are.equal(0, s:relua({ "pause", "--sha", A, "--reason", "ci-failed" }).code)
    assert.are.equal(0, s:relua({ "unpause", "--sha", A, "--reason", "ci-failed" }).code)
    G.commit(s.dir, "repair", "app.txt", "v2\n")   -- HEAD descends from A, the pinned SHA is A
    s:write("pinned.lua", string.format([[
return { lane = "main", sha = function(r) return %q end,
  phases = { { name = "deploy", run = function(r) end } } }
]], A))
    local r = s:relua({ "pinned.lua", "T6" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches("this release's SHA " .. A .. " is the failed SHA itself", r.stderr, 1, true)
    s:write("bad-sha.lua", [[
return { sha = function(r) return "HEAD" end, phases = { { name = "deploy", run = function(r) end } } }
]])
    r = s:relua({ "bad-sha.lua", "T6b" })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("is not a full commit id", r.stderr, 1, true)
  end)
end)

describe("relua controls: a new failure still pauses", function()
  after_each(function() S.cleanup() G.cleanup() end)

  it("pauses on another SHA, and on another reason on the same SHA", function()
    local s = sandbox()
    local A = s.A
    assert.are.equal(0, s:relua({ "pause", "--sha", A, "--reason", "ci-failed" }).code)
    assert.are.equal(0, s:relua({ "unpause", "--sha", A, "--reason", "ci-failed" }).code)
    local B = G.commit(s.dir, "repair", "app.txt", "v2\n")
    s:write("ci-" .. B, "ci-failed")
    local r = s:relua({ "release.lua", "T5" })
    assert.are.equal(1, r.code, r.stderr)
    local c = controls(s)
    assert.are.equal("paused", c.state)
    assert.are.equal(B, c.pauses[1].sha)
    assert.are.equal(0, s:relua({ "unpause", "--sha", B, "--reason", "ci-failed", "--no-wake" }).code)
    assert.are.equal("running", controls(s).state)
    r = s:relua({ "pause", "--sha", B, "--reason", "deploy-failed", "--by", "deploy-bot" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("lane main paused: SHA " .. B, r.stdout, 1, true)
    c = controls(s)
    assert.are.equal("paused", c.state)
    assert.are.equal("deploy-failed", c.pauses[1].reason)
  end)
end)

describe("relua controls: concurrent writers", function()
  after_each(function() S.cleanup() G.cleanup() end)

  it("loses no record from 20 concurrent pause/unpause processes and reconciles by the written order", function()
    local s = sandbox()
    local A = s.A
    local B = string.rep("b", 40)
    assert.are.equal(0, s:relua({ "pause", "--sha", A, "--reason", "ci-failed", "--by", "w0" }).code)
    local procs = {}
    for i = 1, 20 do
      local args
      if i % 4 == 1 then args = { "unpause", "--sha", A, "--reason", "ci-failed", "--no-wake" }
      elseif i % 4 == 2 then args = { "pause", "--sha", A, "--reason", "ci-failed" }
      elseif i % 4 == 3 then args = { "pause", "--sha", B, "--reason", "deploy-failed" }
      else args = { "unpause", "--sha", B, "--reason", "deploy-failed", "--no-wake" } end
      args[#args + 1] = "--by"
      args[#args + 1] = "w" .. i
      procs[i] = spawn(s, args)
    end
    local wrote = { w0 = true }
    local nwrote = 1
    for i, p in ipairs(procs) do
      local res = p:wait()
      p:close()
      assert.is_true(res.code == 0 or res.code == 2, res.stderr)
      if res.code == 0 then
        wrote["w" .. i] = true
        nwrote = nwrote + 1
      else
        assert.matches("unpause refused: lane main is not paused", res.stderr, 1, true)
      end
    end
    local c = controls(s)
    assert.are.equal(nwrote, #c.history)          -- no record lost, none refused by a writer written
    local seen = {}
    for _, e in ipairs(c.history) do
      assert.is_nil(seen[e.record.by])
      seen[e.record.by] = true
      assert.is_true(wrote[e.record.by])
      assert.are_not.equal("refused", e.effect)  -- every unpause was decided on the records before it
      -- each pause was marked ignored exactly when the rules say, given the records before it
      assert.are.equal(e.effect == "ignored", e.record.ignored == true)
    end
    -- the control is the rules table (doc/controls.md) applied to the records in written
    -- order, here by a model of the table written apart from relua.control
    local open, resumed, recovery = {}, {}, nil
    for _, e in ipairs(c.history) do
      local r = e.record
      local k = r.sha .. " " .. r.reason
      if r.kind == "pause" then
        if resumed[k] or open[k] then
          assert.are.equal("ignored", e.effect)
        else
          assert.are.equal("pauses", e.effect)
          open[k] = true
        end
      else
        assert.is_true(open[k])
        open[k], resumed[k], recovery = nil, true, r
      end
    end
    local want_open = {}
    for k in pairs(open) do want_open[#want_open + 1] = k end
    table.sort(want_open)
    local got_open = {}
    for _, p in ipairs(c.pauses) do got_open[#got_open + 1] = p.sha .. " " .. p.reason end
    table.sort(got_open)
    assert.same(want_open, got_open)
    assert.are.equal(#want_open > 0 and "paused" or "running", c.state)
    assert.are.equal(recovery and recovery.by, c.recovery and c.recovery.by)
  end)
end)

describe("relua controls: the wake", function()
  after_each(function() S.cleanup() G.cleanup() end)

  local function failed_deploy()
    local s = sandbox()
    s:write("broken", "")
    local r = s:relua({ "release.lua", "T7" })
    assert.are.equal(1, r.code, r.stderr)
    local c = controls(s)
    assert.are.equal("paused", c.state)
    assert.are.equal("T7", c.pauses[1].ticket)
    return s
  end

  it("resumes the paused ticket, which completes", function()
    local s = failed_deploy()
    os.remove(s:path("broken"))
    local r = s:relua({ "unpause", "--sha", s.A, "--reason", "deploy-failed", "--timeout", "60" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("wake: resuming ticket T7", r.stdout, 1, true)
    assert.matches("wake: ticket T7 resumed and done", r.stdout, 1, true)
    assert.same({ ci = "done", deploy = "done" }, s:statuses("T7"))
    assert.are.equal(s.A .. "\n", s:read("deployed.txt"))
  end)

  it("reports a failed wake, exits 1, and leaves the recovery in place and the lane unpaused", function()
    local s = failed_deploy()
    -- still broken: the resumed phase fails again and restates the same pause
    local r = s:relua({ "unpause", "--sha", s.A, "--reason", "deploy-failed" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("wake failed: the resume of ticket T7 exited 1", r.stderr, 1, true)
    assert.matches("the recovery is recorded and lane main stays unpaused", r.stderr, 1, true)
    local c = controls(s)
    assert.are.equal("running", c.state)
    assert.are.equal(s.A, c.recovery.sha)
    assert.are.equal("ignored", c.history[#c.history].effect)
  end)

  it("bounds the wake with --timeout", function()
    local s = failed_deploy()
    os.remove(s:path("broken"))
    s:write("slow", "")
    local r = s:relua({ "unpause", "--sha", s.A, "--reason", "deploy-failed", "--timeout", "1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("did not finish within --timeout 1 s", r.stderr, 1, true)
    assert.are.equal("running", controls(s).state)
  end)

  it("does not wake with --no-wake", function()
    local s = failed_deploy()
    os.remove(s:path("broken"))
    local r = s:relua({ "unpause", "--sha", s.A, "--reason", "deploy-failed", "--no-wake" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("not waking ticket T7 (--no-wake)", r.stdout, 1, true)
    assert.are.equal("failed", s:statuses("T7").deploy)
  end)
end)

describe("relua controls: dry run", function()
  after_each(function() S.cleanup() G.cleanup() end)

  it("a pause inside a dry run only says what it would do", function()
    local s = sandbox()
    s:write("ci-" .. s.A, "ci-failed")
    local r = s:relua({ "release.lua", "T8", "--dry-run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("[dry-run] would pause lane main for SHA " .. s.A .. ' ("ci-failed")', r.stdout, 1, true)
    assert.same({}, controls(s).history)
  end)
end)

describe("relua controls: bad input", function()
  after_each(function() S.cleanup() G.cleanup() end)

  it("refuses to unpause a lane that is not paused, explaining its state (exit 2)", function()
    local s = sandbox()
    local r = s:relua({ "unpause", "--lane", "main", "--sha", s.A, "--reason", "ci-failed" })
    assert.are.equal(2, r.code)
    assert.matches("unpause refused: lane main is not paused", r.stderr, 1, true)
    assert.matches("lane main: running (no controls recorded)", r.stderr, 1, true)
    assert.same({}, controls(s).history)
  end)

  it("refuses a malformed SHA, an empty reason and a bad lane (exit 2), writing nothing", function()
    local s = sandbox()
    local r = s:relua({ "pause", "--sha", s.A:sub(1, 12), "--reason", "ci-failed" })
    assert.are.equal(2, r.code)
    assert.matches("malformed SHA", r.stderr, 1, true)
    r = s:relua({ "pause", "--sha", s.A, "--reason", "" })
    assert.are.equal(2, r.code)
    assert.matches("the reason is empty", r.stderr, 1, true)
    r = s:relua({ "pause", "--sha", s.A })
    assert.are.equal(2, r.code)
    r = s:relua({ "pause", "--lane", "../etc", "--sha", s.A, "--reason", "x" })
    assert.are.equal(2, r.code)
    assert.matches("invalid lane", r.stderr, 1, true)
    r = s:relua({ "unpause", "--sha", s.A, "--reason", "x", "--timeout", "soon" })
    assert.are.equal(2, r.code)
    assert.same({}, controls(s).history)
  end)

  -- The folder store keeps a lane's records in HOME/lanes/LANE.jsonl, one a line.
  for _, case in ipairs({
    { "a line that is not JSON", '{"v":1,"kind":"pau', "control record 2 of lane main is corrupt" },
    { "a record of the wrong shape", '{"v":1,"kind":"pause","lane":"main","sha":"abc","reason":"x","by":"b","at":"2026-11-30T18:00:00Z"}',
      "control record 2 of lane main is corrupt: malformed sha" },
  }) do
    it("refuses a corrupt control record (" .. case[1] .. ") with its location and never rewrites it #folder", function()
      local s = sandbox()
      assert.are.equal(0, s:relua({ "pause", "--sha", s.A, "--reason", "ci-failed" }).code)
      local file = ".relua/lanes/main.jsonl"
      local before = s:read(file) .. case[2] .. "\n"
      s:write(file, before)
      for _, args in ipairs({ { "controls" }, { "pause", "--sha", s.A, "--reason", "deploy-failed" },
          { "unpause", "--sha", s.A, "--reason", "ci-failed" }, { "release.lua", "T9" } }) do
        local r = s:relua(args)
        assert.are.equal(2, r.code, args[1] .. ": " .. r.stderr)
        assert.matches(case[3], r.stderr, 1, true)
        assert.matches("(in " .. file .. ")", r.stderr, 1, true)
        assert.matches("relua left it untouched", r.stderr, 1, true)
        assert.are.equal(before, s:read(file))
      end
    end)
  end

  it("refuses a recipe with a bad lane or sha (exit 2)", function()
    local s = sandbox()
    s:write("bad.lua", "return { lane = 'a b', phases = { { name = 'x', run = function() end } } }")
    local r = s:relua({ "bad.lua", "T9" })
    assert.are.equal(2, r.code)
    assert.matches("invalid lane", r.stderr, 1, true)
    s:write("bad2.lua", "return { sha = 'abc', phases = { { name = 'x', run = function() end } } }")
    r = s:relua({ "bad2.lua", "T9" })
    assert.are.equal(2, r.code)
    assert.matches("sha must be a function", r.stderr, 1, true)
  end)
end)
