-- The PostgreSQL store, as teams running releases on many CI runners meet it: the relua
-- binary run in separate working folders (separate clones) that share RELUA_STORE, against
-- a real PostgreSQL 15 server started by the suite (tests/support/postgres.lua).
local h = require "support.h"
local S = require "support.release"
local pg = require "support.postgres"
local proc = require "relua.proc"

local srv

-- A runner: a folder of its own holding the recipes (a clone), no ledger folder shared.
local function runner(recipes)
  local s = S.sandbox()
  for name, src in pairs(recipes or {}) do s:write(name, src) end
  return s
end

-- Runs relua in runner s against the store url: {code=, stdout=, stderr=}.
local function run(s, url, args, env)
  local e = { RELUA_STORE = url }
  for k, v in pairs(env or {}) do e[k] = v end
  return s:relua(args, e)
end

-- Starts relua in the background in runner s; returns the process handle.
local function spawn(s, url, args, env)
  local argv = { S.bin() }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local e = { RELUA_STORE = url, RELUA_HOME = false }
  for k, v in pairs(env or {}) do e[k] = v end
  return assert(proc.spawn(argv, { cwd = s.dir, env = e, timeout = 120 }))
end

-- Waits (at most 30 s) until path exists.
local function await(path)
  local deadline = proc.clock() + 30
  while proc.clock() < deadline do
    if io.open(path) then return true end
    proc.sleep(0.02)
  end
  error("timed out waiting for " .. path)
end

-- A phase body that marks the shared file `marks` with key, once per step (r:step).
local MARK = [[
local function mark(k)
  local f = assert(io.open(os.getenv("MARKS"), "a")) f:write(k, "\n") f:close()
end
]]

local function count_lines(path)
  local c = {}
  for line in (h.slurp(path)):gmatch("([^\n]+)") do c[line] = (c[line] or 0) + 1 end
  return c
end

setup(function()
  srv = pg.shared()
end)

describe("RELUA_STORE=postgres://", function()
  after_each(S.cleanup)

  it("lets a re-run on a fresh runner resume where the first one failed, without redoing its steps", function()
    local url = srv:database()
    local marks = h.tmpdir() .. "/marks"
    local src = MARK .. [[
local phases = {}
for i = 1, 4 do
  phases[i] = { name = "p" .. i, run = function(r)
    mark("run-p" .. i)
    r:step("s" .. i, function() mark("step-p" .. i) return { i = i } end)
    r.state["P" .. i] = "v" .. i
    if i == 3 and io.open("broken") then error("phase 3 is broken on this runner") end
  end }
end
return { name = "ci", phases = phases }
]]
    local a = runner({ ["release.lua"] = src, broken = "" })
    local b = runner({ ["release.lua"] = src })
    local r = run(a, url, { "release.lua", "1.0" }, { MARKS = marks })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("phase 3 is broken", r.stderr)
    assert.is_false(a:exists(".relua/releases/1.0.json"))   -- nothing in the runner's folder
    -- runner B: another folder, the same store
    r = run(b, url, { "release.lua", "1.0" }, { MARKS = marks })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase p3: running", r.stdout)
    assert.not_matches("phase p1: running", r.stdout)
    -- phase 3 ran on both runners; every step ran once: B did not redo A's
    assert.same({ ["run-p1"] = 1, ["run-p2"] = 1, ["run-p3"] = 2, ["run-p4"] = 1,
      ["step-p1"] = 1, ["step-p2"] = 1, ["step-p3"] = 1, ["step-p4"] = 1 }, count_lines(marks))
    -- any third folder sees the whole story
    local c = runner()
    r = run(c, url, { "status", "1.0" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("ticket 1%.0: done", r.stdout)
    r = run(c, url, { "log", "1.0" })
    assert.matches("phase=p3 event=failed rc=1", r.stdout)
    assert.matches("phase=p4 event=done", r.stdout)
    r = run(c, url, { "list" })
    assert.matches("1%.0", r.stdout)
  end)

  it("frees a ticket the moment its runner is killed (kill -9): another runner takes it", function()
    local url = srv:database()
    local src = [[return { name = "slow", phases = {
      { name = "a", run = function(r) end },
      { name = "b", run = function(r)
          if not io.open("fast") then io.open("started", "w"):close() require("relua.proc").sleep(60) end
        end },
      { name = "c", run = function(r) end } } }]]
    local a = runner({ ["release.lua"] = src })
    local b = runner({ ["release.lua"] = src, fast = "" })
    local ha = spawn(a, url, { "release.lua", "T1" })
    await(a:path("started"))
    assert(ha:kill("KILL"))
    ha:wait()
    ha:close()
    -- no wait: the server drops the dead session's lock as its connection closes (a refused
    -- run looks again for at most 1 s before naming the holder: B got in within it)
    local r = run(b, url, { "release.lua", "T1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase b: running", r.stdout)
    assert.matches("ticket T1: done", run(b, url, { "status", "T1" }).stdout)
  end)

  it("runs 20 runners on 20 tickets at once: none waits for another", function()
    local url = srv:database()
    local gate = h.tmpdir()
    -- each run's phase waits until all 20 are inside their phase at the same time: if one
    -- waited for another's lock, none would get past the gate
    local src = [[
local proc = require "relua.proc"
return { name = "many", phases = { { name = "meet", run = function(r)
  local gate = os.getenv("GATE")
  io.open(gate .. "/" .. r.ticket, "w"):close()
  local deadline = proc.clock() + 60
  while #require("relua.fs").list(gate) < 20 do
    if proc.clock() > deadline then error("not all 20 runs got in") end
    proc.sleep(0.02)
  end
end } } }]]
    local handles = {}
    for i = 1, 20 do
      local s = runner({ ["release.lua"] = src })
      handles[i] = spawn(s, url, { "release.lua", "T" .. i }, { GATE = gate })
    end
    local failed = {}
    for i = 1, 20 do
      local res = handles[i]:wait()
      handles[i]:close()
      if res.code ~= 0 then failed[#failed + 1] = "T" .. i .. ": " .. res.stderr end
    end
    assert.are.equal("", table.concat(failed, "\n"))
    local r = run(runner(), url, { "list" })
    for i = 1, 20 do assert.matches("T" .. i .. "%s", r.stdout) end
  end)

  it("runs 20 runners on one ticket: exactly one runs, the others exit 3 naming it", function()
    local url = srv:database()
    local dir = h.tmpdir()
    local src = [[
local proc = require "relua.proc"
return { name = "one", phases = { { name = "only", run = function(r)
  local f = assert(io.open(os.getenv("DIR") .. "/ran-" .. proc.pid(), "w")) f:close()
  local deadline = proc.clock() + 60
  while not io.open(os.getenv("DIR") .. "/go") and proc.clock() < deadline do proc.sleep(0.02) end
end } } }]]
    local handles, refused, winner = {}, 0, nil
    for i = 1, 20 do
      handles[i] = spawn(runner({ ["release.lua"] = src }), url, { "release.lua", "ONE" }, { DIR = dir })
    end
    -- the 19 refused ones end by themselves while the winner waits for "go"
    local results = {}
    local deadline = proc.clock() + 60
    while refused < 19 and proc.clock() < deadline do
      refused = 0
      for i = 1, 20 do
        if not results[i] and not handles[i]:running() then results[i] = handles[i]:wait() end
        if results[i] and results[i].code == 3 then refused = refused + 1 end
      end
      proc.sleep(0.02)
    end
    h.spit(dir .. "/go", "")
    local codes, errs = {}, {}
    for i = 1, 20 do
      results[i] = results[i] or handles[i]:wait()
      handles[i]:close()
      codes[results[i].code] = (codes[results[i].code] or 0) + 1
      if results[i].code ~= 3 then errs[#errs + 1] = results[i].stderr end
      if results[i].code == 0 then winner = results[i].pid end
    end
    assert.same({ [0] = 1, [3] = 19 }, codes, table.concat(errs, "\n"))
    local ran = require("relua.fs").list(dir)
    assert.same({ "go", "ran-" .. winner }, ran)
    for i = 1, 20 do
      if results[i].code == 3 then
        assert.matches("ticket ONE is locked by another run %(pid=" .. winner .. " host=%S+ since=", results[i].stderr)
      end
    end
  end)
end)

describe("a lost connection to the store", function()
  after_each(S.cleanup)

  -- Phase b waits for `go` once it has recorded something; the connection is cut meanwhile.
  local SRC = [[return { name = "cut", phases = {
    { name = "a", run = function(r) r.state.A = 1 end },
    { name = "b", run = function(r)
        r.state.B1 = 1
        io.open("started", "w"):close()
        local proc = require "relua.proc"
        local deadline = proc.clock() + 60
        while not io.open("go") and proc.clock() < deadline do proc.sleep(0.02) end
        r.state.B2 = 2
        io.open("b-after", "w"):close()
      end },
    { name = "c", run = function(r) io.open("c-ran", "w"):close() end } } }]]

  -- The two ways to lose the connection: the session terminated, the server restarted.
  local function terminate(db)
    srv:psql("select pg_terminate_backend(pid) from pg_stat_activity where datname = '" .. db ..
      "' and application_name = 'relua'")
  end
  local function restart() srv:restart() end

  local function cut_and_resume(cut)
    local url, db = srv:database()
    local a = runner({ ["release.lua"] = SRC })
    local ha = spawn(a, url, { "release.lua", "L1" })
    await(a:path("started"))
    cut(db)
    h.spit(a:path("go"), "")
    local res = ha:wait()
    ha:close()
    assert.are.equal(1, res.code, res.stderr)
    assert.matches("connection to the store postgres://relua@127%.0%.0%.1:%d+/" .. db .. " was lost", res.stderr)
    assert.matches("no longer holds ticket L1", res.stderr)
    assert.is_false(a:exists("c-ran"))                      -- nothing after the loss ran
    -- no event lost: everything recorded before the cut is there; nothing after it
    local b = runner({ ["release.lua"] = SRC, go = "" })
    local log = run(b, url, { "log", "L1" }).stdout
    assert.matches("phase=a event=done", log)
    assert.matches("phase=b event=start", log)
    assert.not_matches("phase=b event=done", log)
    assert.not_matches("B2", log)
    -- resumable by any runner
    local r = run(b, url, { "release.lua", "L1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase b: running", r.stdout)
    assert.is_true(b:exists("c-ran"))
  end

  it("when the session is terminated (pg_terminate_backend): the run stops, the ticket resumes elsewhere", function()
    cut_and_resume(terminate)
  end)

  it("when the server restarts mid-run: the run stops, the ticket resumes elsewhere", function()
    cut_and_resume(restart)
  end)

  -- Phase b waits in a long child process: the run must stop at the loss, not when the
  -- child ends and the next record fails. The wait's timeout (20 s, under the child's 30 s
  -- sleep) only guards against a hang.
  local LONG = [[return { name = "cut", phases = {
    { name = "a", run = function(r) r.state.A = 1 end },
    { name = "b", run = function(r)
        r:sh("echo $$ > child.pid; touch started; sleep 30; touch child-finished")
        r.state.B = 2
      end },
    { name = "c", run = function(r) io.open("c-ran", "w"):close() end } } }]]

  local function cut_during_child(cut)
    local url, db = srv:database()
    local a = runner({ ["release.lua"] = LONG })
    local ha = spawn(a, url, { "release.lua", "L2" })
    await(a:path("started"))
    cut(db)
    local res = ha:wait(20)
    ha:close()
    assert.is_false(res.timed_out, "relua went on running after the loss")
    assert.are.equal(1, res.code, res.stderr)
    assert.matches("connection to the store postgres://relua@127%.0%.0%.1:%d+/" .. db .. " was lost", res.stderr)
    assert.matches("no longer holds ticket L2 and records nothing more; the ticket is resumable", res.stderr)
    -- the phase's child was killed with the run
    local pid = assert(tonumber(a:read("child.pid"):match("%d+")))
    assert.are_not.equal(0, h.sh("kill -0 " .. pid .. " 2>/dev/null").code)
    assert.is_false(a:exists("child-finished"))
    assert.is_false(a:exists("c-ran"))
    -- nothing recorded after the loss; phase b is left running: resumable elsewhere
    local b = runner({ ["release.lua"] = LONG:gsub("sleep 30", "true") })
    local r = run(b, url, { "status", "L2" })
    assert.matches("interrupted in phase b", r.stdout)
    assert.not_matches("phase=b event=failed", run(b, url, { "log", "L2" }).stdout)
    r = run(b, url, { "release.lua", "L2" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(b:exists("c-ran"))
  end

  it("stops a run waiting on a child process at once when its session is terminated", function()
    cut_during_child(terminate)
  end)

  it("stops a run waiting on a child process at once when the server restarts", function()
    cut_during_child(restart)
  end)

  it("stops a script holding a ticket through relua.core.store, even inside a pcall", function()
    local url, db = srv:database()
    local s = runner({ ["hold.lua"] = [[
local st = assert(require("relua.core.store").open(os.getenv("RELUA_STORE")))
local lg = assert(st:ledger("H1"))
io.open("holding", "w"):close()
pcall(require("relua.proc").sleep, 30)
io.open("went-on", "w"):close()
lg:close()
]] })
    local hs = spawn(s, url, { "hold.lua" })
    await(s:path("holding"))
    terminate(db)
    local res = hs:wait(20)
    hs:close()
    assert.is_false(res.timed_out, "the script went on sleeping after the loss")
    assert.are.equal(1, res.code, res.stderr)
    assert.matches("the connection to the store [^\n]* was lost: this run no longer holds ticket H1", res.stderr)
    assert.is_false(s:exists("went-on"))
  end)
end)

describe("the store's connection string", function()
  after_each(S.cleanup)

  it("never shows the password, whether in the URL or in PGPASSWORD", function()
    local url = srv:database()
    local s = runner({ ["release.lua"] = [[return { phases = { { name = "x", run = function(r) error("boom") end } } }]] })
    local outs = {}
    local function keep(r) outs[#outs + 1] = r.stdout .. r.stderr return r end
    keep(run(s, url, { "release.lua", "P1" }))
    keep(run(s, url, { "status", "P1" }))
    -- a wrong database name: the error names the store without the password
    local bad = url:gsub("/[^/]*$", "/missing")
    local r = keep(run(s, bad, { "status", "P1" }))
    assert.are_not.equal(0, r.code)
    assert.matches("postgres://relua@127%.0%.0%.1:%d+/missing", r.stderr)
    -- the password from PGPASSWORD
    local nopw = srv:url(url:match("/([^/]*)$"), { password = false })
    r = keep(run(s, nopw, { "status", "P1" }, { PGPASSWORD = srv.password }))
    assert.are.equal(0, r.code, r.stderr)
    r = keep(run(s, nopw, { "status", "P1" }, { PGPASSWORD = "wrong-" .. srv.password }))
    assert.are_not.equal(0, r.code)
    for _, o in ipairs(outs) do assert.is_nil(o:find(srv.password, 1, true)) end
  end)
end)

describe("the store's data", function()
  after_each(S.cleanup)

  it("refuses a stale writer: a state changed behind a run's back is not overwritten", function()
    local url, db = srv:database()
    local s = runner({ ["release.lua"] = [[return { phases = { { name = "a", run = function(r) r.state.A = 1 end } } }]],
      ["hold.lua"] = [[
local store = require "relua.core.store"
require "relua.core.ledger"
local st = assert(store.open(os.getenv("RELUA_STORE")))
local lg = assert(st:ledger("W1"))
io.open("holding", "w"):close()
local proc = require "relua.proc"
local deadline = proc.clock() + 60
while not io.open("go") and proc.clock() < deadline do proc.sleep(0.02) end
lg:set("STALE", "from the stale writer")
]] })
    assert.are.equal(0, run(s, url, { "release.lua", "W1" }).code)
    local before = srv:psql("select version from relua.tickets where ticket = 'W1'", db)
    local hold = spawn(s, url, { "hold.lua" })
    await(s:path("holding"))
    -- another writer (not through relua's lock) stores a newer state meanwhile
    srv:psql("update relua.tickets set version = version + 1, state = replace(state, '\"A\": 1', '\"A\": 2') where ticket = 'W1'", db)
    h.spit(s:path("go"), "")
    local res = hold:wait()
    hold:close()
    assert.are_not.equal(0, res.code)
    assert.matches("ticket W1 in the store postgres://relua@127%.0%.0%.1:%d+/" .. db ..
      " is newer than the one this run read %(version " .. before:match("%d+") .. "%)", res.stderr)
    local state = srv:psql("select state from relua.tickets where ticket = 'W1'", db)
    assert.matches('"A": 2', state)
    assert.not_matches("STALE", state)
  end)

  it("is created on first use, refused when newer than relua knows, and upgraded by relua store migrate", function()
    local url, db = srv:database()
    local s = runner({ ["release.lua"] = [[return { phases = { { name = "a", run = function(r) end } } }]] })
    local r = s:relua({ "store", "migrate", "--store", url })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("relua schema 1 created", r.stdout)
    assert.is_nil(r.stdout:find(srv.password, 1, true))
    r = run(s, url, { "store", "migrate" })
    assert.matches("relua schema 1, nothing to do", r.stdout)
    assert.are.equal(0, run(s, url, { "release.lua", "M1" }).code)
    srv:psql("update relua.meta set value = '99' where key = 'schema_version'", db)
    r = run(s, url, { "status", "M1" })
    assert.are.equal(2, r.code)
    assert.matches("has relua schema version 99, newer than this relua knows %(1%): upgrade relua", r.stderr)
    r = s:relua({ "store", "migrate" }, { RELUA_STORE = false })
    assert.are.equal(2, r.code)
    assert.matches("no store given", r.stderr)
  end)

  it("takes a local ledger in with relua store copy --to postgres://", function()
    local url = srv:database()
    local s = runner({ ["release.lua"] = [[return { phases = {
      { name = "a", run = function(r) r.state.A = "one" end },
      { name = "b", run = function(r) if io.open("broken") then error("b is broken") end end } } }]], broken = "" })
    assert.are.equal(1, s:relua({ "release.lua", "C1" }).code)   -- the folder store
    local r = s:relua({ "store", "copy", "--to", url })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil((r.stdout .. r.stderr):find(srv.password, 1, true))
    -- on another runner, through the shared store
    local b = runner({ ["release.lua"] = [[return { phases = {
      { name = "a", run = function(r) error("a must not run again") end },
      { name = "b", run = function(r) end } } }]] })
    r = run(b, url, { "log", "C1" })
    assert.matches("phase=b event=failed", r.stdout)
    r = run(b, url, { "release.lua", "C1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("ticket C1: done", run(b, url, { "status", "C1" }).stdout)
  end)
end)

describe("a lane's control records in PostgreSQL", function()
  it("are decided and appended under the lane's lock, listed oldest first, from any runner", function()
    local url = srv:database()
    local store = require "relua.core.store"
    local a = assert(store.open(url))
    local b = assert(store.open(url))          -- another runner's connection
    local seen
    assert.same({ action = "pause", by = "a" }, a:control_append("main", function(records)
      seen = #records
      return { action = "pause", by = "a" }
    end))
    assert.are.equal(0, seen)
    -- b decides on what a appended: a stale pause is ignored by returning nothing
    assert.is_nil(b:control_append("main", function(records)
      seen = records
      return nil
    end))
    assert.same({ { action = "pause", by = "a" } }, seen)
    -- an error in decide appends nothing and is raised again
    assert.has_error(function()
      b:control_append("main", function() error("decide failed") end)
    end)
    assert.same({ action = "resume", by = "b" }, b:control_append("main", function()
      return { action = "resume", by = "b" }
    end))
    b:control_append("other", function() return { action = "pause" } end)
    assert.same({ { action = "pause", by = "a" }, { action = "resume", by = "b" } }, a:controls("main"))
    assert.same({ "main", "other" }, a:lanes())
    a:close()
    b:close()
  end)
end)
