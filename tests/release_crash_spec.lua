-- kill -9 at many moments of a release: between phases, inside a step before and after
-- its result is recorded, during a state write, during a log event, during a process.
-- After each: the state file parses, the log has no torn line, every recorded step ran
-- exactly once, the lock is free, and a re-run finishes the release without running a
-- recorded step again. RELUA_TEST_CRASH_AT=<point>[:<n>] is the host's test-only fault
-- injection: it SIGKILLs itself the n-th time it reaches <point>.
local h = require "support.h"
local S = require "support.release"

local PHASES, STEPS = 4, 3
local LOG_LINE = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ ticket=T [^\n]*event=%S+[^\n]*$"

local function check_ledger(s)
  local text = s:log_text("T")
  if text ~= "" then
    assert.are.equal("\n", text:sub(-1), "the log ends with a torn line")
    for line in text:gmatch("([^\n]*)\n") do
      assert.matches(LOG_LINE, line)
    end
  end
  local state, err, code = s:store():read("T")   -- a state that does not parse is "corrupt"
  if state then
    assert.are.equal(1, state.schema)
  else
    assert.are.equal("ENOENT", code, err)
  end
  return state
end

-- Runs the release once with the crash point, checks what it left, re-runs it.
local function crash_and_recover(point, opts)
  opts = opts or {}
  local s = S.sandbox()
  s:write("release.lua", S.recipe_source(PHASES, STEPS))
  local r = s:relua({ "release.lua", "T" }, { RELUA_TEST_CRASH_AT = point })
  assert.are.equal(137, r.code, point .. ": expected a SIGKILL, got " .. tostring(r.code) .. "\n" .. r.stderr)
  local state = check_ledger(s)
  local before = s:counts()
  local recorded = {}
  if state then
    for key in pairs(state.steps or {}) do
      assert.are.equal(1, before[key], point .. ": recorded step " .. key .. " ran " .. tostring(before[key]) .. " times")
      recorded[key] = true
    end
  end
  if opts.expect_steps then
    local n = 0
    for _ in pairs(recorded) do n = n + 1 end
    assert.are.equal(opts.expect_steps, n, point .. ": recorded steps at the crash")
  end
  -- the kernel released the lock: the re-run goes through and finishes the release
  r = s:relua({ "release.lua", "T" })
  assert.are.equal(0, r.code, point .. ": the re-run failed\n" .. r.stderr)
  state = check_ledger(s)
  for i = 1, PHASES do
    assert.are.equal("done", state.phases[i].status)
    assert.are.equal("v" .. i, state.state["P" .. i])
  end
  local after = s:counts()
  for i = 1, PHASES do
    for j = 1, STEPS do
      local key = "p" .. i .. "-s" .. j
      assert.truthy(state.steps[key], key .. " recorded")
      if recorded[key] then
        assert.are.equal(1, after[key], point .. ": " .. key .. " ran again after it was recorded")
      else
        -- only the step that was running when the run died may have run twice
        assert.truthy(after[key] == 1 or (after[key] == 2 and before[key] == 1), key)
      end
    end
  end
  -- nothing half-written is left behind (the folder store's temporary files)
  if not s.store_url then
    local left = h.sh("ls -a " .. h.quote(s.rel)).stdout
    assert.is_nil(left:match("relua%-tmp"), left)
  end
  assert.matches("nothing to do", s:relua({ "release.lua", "T" }).stdout)
  return s, before
end

describe("kill -9 during a release", function()
  after_each(S.cleanup)

  -- 27 crash points: {point, recorded steps expected at the crash (nil: not checked)}
  local points = {
    { "state-write:1", 0 },             -- the very first state write, half written
    { "state-write:2", 0 },             -- marking p1 running
    { "state-write:4", 1 },             -- recording p1's second step
    { "state-write:9" },
    { "state-write:20" },
    { "state-saved:1", 0 },             -- after the rename, before its log line
    { "state-saved:6" },
    { "log-event:1", 0 },
    { "log-event:7" },
    { "phase-start:1", 0 },             -- between phases: p1 marked running
    { "phase-start:3", 6 },
    { "phase-end:1", 3 },               -- p1's function returned, not yet recorded done
    { "phase-end:4", 12 },
    { "phase-done:1", 3 },              -- between phases: p1 done, p2 not started
    { "phase-done:2", 6 },
    { "phase-done:4", 12 },             -- all done but the final log lines
    { "step-run:1", 0 },                -- inside a step, before it ran
    { "step-run:5", 4 },
    { "step-before-record:1", 0 },      -- the step ran; its result is not recorded yet
    { "step-before-record:2", 1 },
    { "step-before-record:7", 6 },
    { "step-before-record:12", 11 },
    { "step-after-record:1", 1 },       -- recorded, before the log line's successor
    { "step-after-record:6", 6 },
    { "step-after-record:12", 12 },
  }
  for _, p in ipairs(points) do
    it("at " .. p[1] .. " loses nothing and a re-run finishes", function()
      crash_and_recover(p[1], { expect_steps = p[2] })
    end)
  end

  it("at step-before-record runs that step again on the re-run (it never recorded)", function()
    local _, before = crash_and_recover("step-before-record:2")
    assert.are.equal(1, before["p1-s2"]) -- it had run once when the process died
  end)

  local function kill_during_process(extra_wait)
    local s = S.sandbox()
    s:write("release.lua", [[
local function mark(k) local f = assert(io.open("ran.txt", "a")) f:write(k, "\n") f:close() end
return { phases = {
  { name = "prepare", run = function(r) r:step("backup", function() mark("backup") return "b1" end) end },
  { name = "migrate", run = function(r)
      r:sh("if [ ! -f proc.pid ]; then echo $$ > proc.pid.tmp; mv proc.pid.tmp proc.pid; echo working; exec sleep 30; fi; echo second-time")
      r:step("after", function() mark("after") return 1 end)
    end },
  { name = "verify", run = function(r) end } } }]])
    local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
    local r = h.sh(string.format(
      "{ %s release.lua T >out 2>err & pid=$!; i=0; while [ ! -f proc.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; " ..
      "sleep %s; kill -9 $pid; wait $pid; echo \"rc=$?\"; kill $(cat proc.pid) 2>/dev/null; }", h.quote(bin), extra_wait),
      { cwd = s.dir, env = { RELUA_HOME = false, RELUA_TEST_CRASH_AT = false, RELUA_STORE = s.store_url or false } })
    assert.matches("rc=137", r.stdout)
    local state = check_ledger(s)
    assert.same({ "done", "running", "pending" },
      { state.phases[1].status, state.phases[2].status, state.phases[3].status })
    assert.are.equal(1, s:counts().backup)
    local st = s:relua({ "status", "T" })
    assert.matches("interrupted in phase migrate", st.stdout)
    assert.matches("working", s:out("T", "migrate"))
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("second%-time", r.stdout)
    assert.same({ backup = 1, after = 1 }, s:counts())
    check_ledger(s)
  end

  it("while a phase's process runs: the phase is left running, a re-run redoes it", function()
    kill_during_process("0")
  end)

  it("while a phase's process runs, a moment later", function()
    kill_during_process("0.2")
  end)
end)

describe("Ctrl-C while the ledger records", function()
  after_each(S.cleanup)

  -- Saves of a 2-phase, 1-step recipe: 1 the new state, 2 p1 running, 3 p1-s1 recorded,
  -- 4 r.state.P1, 5 p1 done, 6 p2 running, ...
  local function interrupt_at(n)
    local s = S.sandbox()
    s:write("release.lua", S.recipe_source(2, 1))
    local r = s:relua({ "release.lua", "T" }, { RELUA_TEST_CRASH_AT = "state-encode:" .. n .. ":INT" })
    assert.are.equal(130, r.code, r.stderr)
    check_ledger(s)
    return s, r
  end

  local function finishes(s)
    local r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stderr)
    assert.same({ p1 = "done", p2 = "done" }, s:statuses("T"))
    assert.same({ ["p1-s1"] = 1, ["p2-s1"] = 1 }, s:counts())
  end

  it("as a phase is marked running: the phase fails rc=130 without running", function()
    local s, r = interrupt_at(2)
    assert.matches("release interrupted in phase p1 %(rc=130%)", r.stderr)
    assert.same({ p1 = "failed", p2 = "pending" }, s:statuses("T"))
    assert.same({}, s:counts())
    finishes(s)
  end)

  it("as a step's result is recorded: the result is kept, the phase fails rc=130", function()
    local s = interrupt_at(3)
    assert.are.equal("failed", s:statuses("T").p1)
    assert.are.equal(130, s:state("T").phases[1].rc)
    assert.truthy(s:state("T").steps["p1-s1"])
    assert.matches("phase=p1 event=step key=p1%-s1 status=done", s:log_text("T"))
    finishes(s)
  end)

  it("as a state value is written: the value is kept, the phase fails rc=130", function()
    local s = interrupt_at(4)
    assert.are.equal("v1", s:state("T").state.P1)
    assert.are.equal("failed", s:statuses("T").p1)
    finishes(s)
  end)

  it("as a phase is recorded done: it stays done and the next phase does not start", function()
    local s, r = interrupt_at(5)
    assert.same({ p1 = "done", p2 = "pending" }, s:statuses("T"))
    assert.matches("release interrupted in phase p2 %(rc=130%)%. Resume: relua release%.lua T %-%-from=p2", r.stderr)
    local lines = s:log_lines("T")
    assert.matches("phase=p1 event=done", lines[#lines - 1])
    assert.matches("phase=p2 event=interrupted$", lines[#lines])
    finishes(s)
  end)
end)
