-- The release engine as an operator meets it: the relua binary run on recipes in a
-- sandbox; exit codes, what it prints, and the ledger files it leaves behind.
local h = require "support.h"
local S = require "support.release"

local function esc(s) return (s:gsub("%p", "%%%0")) end

-- prepare / migrate / ticket / verify, as in the runbook; migrate fails while `broken`
-- exists; each phase appends its name to ran.txt.
local FOUR = [[
local function mark(k) local f = assert(io.open("ran.txt", "a")) f:write(k, "\n") f:close() end
return {
  name = "four",
  phases = {
    { name = "prepare", run = function(r)
        mark("prepare")
        r.state.BASE_SHA = r.state.BASE_SHA or "abc123"
        r:step("backup-db", function() mark("backup-db") return { file = "db.tar", size = 3 } end)
      end,
      revert = function(r) mark("revert-prepare") end },
    { name = "migrate", run = function(r)
        mark("migrate")
        r:sh("if [ -f broken ]; then echo 'migration 7 failed' >&2; exit 1; fi; echo migrated")
      end,
      revert = function(r) mark("revert-migrate") end },
    { name = "ticket", run = function(r) mark("ticket") r:include("releases/" .. r.ticket .. "-*.lua") end },
    { name = "verify", run = function(r) mark("verify") end,
      revert = function(r) mark("revert-verify") end },
  },
}
]]

describe("relua RECIPE TICKET", function()
  after_each(S.cleanup)

  it("runs every phase in order, records them done and exits 0", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    local r = s:relua({ "release.lua", "1234" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("prepare\nbackup-db\nmigrate\nticket\nverify\n", s:read("ran.txt"))
    assert.matches("release 1234 done: all 4 phases done", r.stdout)
    assert.same({ prepare = "done", migrate = "done", ticket = "done", verify = "done" }, s:statuses("1234"))
    local st = s:state("1234")
    assert.are.equal(1, st.schema)
    assert.are.equal("abc123", st.state.BASE_SHA)
    assert.same({ file = "db.tar", size = 3 }, st.steps["backup-db"].result)
    assert.are.equal(s:path("release.lua"), st.recipe.path)
    assert.matches("^%x+$", st.recipe.sha256)
    assert.are.equal(64, #st.recipe.sha256)
    -- every log line: timestamp first, then logfmt
    for _, line in ipairs(s:log_lines("1234")) do
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ ticket=1234 ", line)
    end
    assert.same({ "prepare:start", "prepare:done", "migrate:start", "migrate:done",
      "ticket:start", "ticket:done", "verify:start", "verify:done" },
      s:events("1234", { start = true, done = true }))
    -- the phase's output is kept beside the log
    assert.matches("migrated\n", s:out("1234", "migrate"))
  end)

  it("halts on a failure, says where and what to do next, exit 1", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    s:write("broken", "")
    local r = s:relua({ "release.lua", "1234" })
    assert.are.equal(1, r.code)
    assert.matches("release failed in phase migrate %(rc=1%)%. Resume: relua release%.lua 1234 %-%-from=migrate%. Roll back: relua revert 1234%.", r.stderr)
    assert.matches("migration 7 failed", r.stderr) -- the process's own stderr streamed
    assert.are.equal("prepare\nbackup-db\nmigrate\n", s:read("ran.txt")) -- nothing after it ran
    assert.same({ prepare = "done", migrate = "failed", ticket = "pending", verify = "pending" }, s:statuses("1234"))
    local lines = s:log_lines("1234")
    local failed = lines[#lines]
    assert.matches(" ticket=1234 phase=migrate event=failed rc=1 ", failed)
    assert.matches('msg="command exited with 1: ', failed)
    assert.matches("migration 7 failed", s:out("1234", "migrate"))
  end)

  it("fails a phase with the exit code of its process", function()
    local s = S.sandbox()
    s:write("r.lua", 'return { phases = { { name = "a", run = function(r) r:sh("exit 42") end } } }')
    local r = s:relua({ "r.lua", "T1" })
    assert.are.equal(1, r.code)
    assert.matches("release failed in phase a %(rc=42%)", r.stderr)
    assert.are.equal(42, s:state("T1").phases[1].rc)
    assert.matches("event=failed rc=42", s:log_text("T1"))
  end)

  it("shows the hint of a structured error that failed a phase", function()
    local s = S.sandbox()
    s:write("r.lua", [[return { phases = { { name = "a", run = function(r)
      require("relua.error").raise("dirty", "Working tree is dirty: /srv/app: README", { hint = "commit or stash these changes" })
    end } } }]])
    local r = s:relua({ "r.lua", "T1" })
    assert.are.equal(1, r.code)
    assert.matches("relua: phase a failed: Working tree is dirty: /srv/app: README\ncommit or stash these changes\nrelease failed in phase a", r.stderr)
  end)

  it("fails a phase that raises with rc=1 and the error's message", function()
    local s = S.sandbox()
    s:write("r.lua", 'return { phases = { { name = "a", run = function(r) error("disk on fire") end } } }')
    local r = s:relua({ "r.lua", "T1" })
    assert.are.equal(1, r.code)
    assert.matches("phase a failed: r%.lua:1: disk on fire", r.stderr)
    local p = s:state("T1").phases[1]
    assert.are.equal("failed", p.status)
    assert.are.equal(1, p.rc)
    assert.matches("disk on fire", p.msg)
  end)

  it("resumes at the first phase not done, logs the earlier ones skipped, then has nothing to do", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    s:write("broken", "")
    assert.are.equal(1, s:relua({ "release.lua", "1234" }).code)
    os.remove(s:path("broken"))
    os.remove(s:path("ran.txt"))
    local r = s:relua({ "release.lua", "1234" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("migrate\nticket\nverify\n", s:read("ran.txt")) -- prepare not re-run
    assert.matches("phase prepare: done earlier, skipped", r.stdout)
    local ev = s:events("1234", { skipped = true })
    assert.same({ "prepare:skipped" }, ev)
    r = s:relua({ "release.lua", "1234" })
    assert.are.equal(0, r.code)
    assert.matches("nothing to do", r.stdout)
    assert.are.equal("migrate\nticket\nverify\n", s:read("ran.txt"))
    local lines = s:log_lines("1234")
    assert.matches(" event=nothing%-to%-do recipe=release%.lua sha256=%x+$", lines[#lines])
    -- that event records no change: written whole, but a no-op re-run waits for no disk flush
    local traced = h.sh(string.format("strace -f -qq -o sync.txt -e trace=fsync,fdatasync,syncfs,sync_file_range "
      .. "%s release.lua 1234; exit $?", h.quote(S.bin())), { cwd = s.dir, env = { RELUA_HOME = false,
      RELUA_TEST_CRASH_AT = false, RELUA_STORE = s.store_url or false,
      -- LeakSanitizer cannot run under ptrace: the ASan pass checks leaks everywhere else
      ASAN_OPTIONS = (os.getenv("ASAN_OPTIONS") or "") .. ":detect_leaks=0" } })
    assert.are.equal(0, traced.code, traced.stderr)
    assert.are.equal("", s:read("sync.txt"))
    local after = s:log_lines("1234")
    assert.are.equal(#lines + 1, #after)
    assert.matches(" event=nothing%-to%-do recipe=release%.lua sha256=%x+$", after[#after])
  end)

  it("--from=PHASE re-runs that phase and the rest, and needs every earlier phase done", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    s:write("broken", "")
    s:relua({ "release.lua", "1234" })
    local r = s:relua({ "release.lua", "1234", "--from=verify" })
    assert.are.equal(2, r.code)
    assert.matches("cannot start at phase verify: the earlier phase migrate is not done %(failed%)", r.stderr)
    r = s:relua({ "release.lua", "1234", "--from=deploy" })
    assert.are.equal(2, r.code)
    assert.matches('unknown phase "deploy": the phases are prepare, migrate, ticket, verify', r.stderr)
    os.remove(s:path("broken"))
    os.remove(s:path("ran.txt"))
    r = s:relua({ "release.lua", "1234", "--from=migrate" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("migrate\nticket\nverify\n", s:read("ran.txt"))
    -- a done phase runs again when asked to
    os.remove(s:path("ran.txt"))
    r = s:relua({ "run", "release.lua", "1234", "--from", "ticket" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("ticket\nverify\n", s:read("ran.txt"))
  end)

  it("refuses bad tickets with exit 2 and creates nothing", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    for _, t in ipairs({ "../x", "", "a b", ".", "..", "x/y", string.rep("a", 65), "tï" }) do
      local r = s:relua({ "release.lua", t })
      assert.are.equal(2, r.code, "ticket " .. t)
      assert.matches("invalid ticket", r.stderr)
      assert.matches("1%-64 characters", r.stderr)
    end
    assert.is_false(s:exists(".relua"))
    assert.is_false(s:exists("ran.txt"))
    assert.are.equal(0, s:relua({ "release.lua", string.rep("a", 64) }).code)
    assert.are.equal(0, s:relua({ "release.lua", "v1.2_rc-3" }).code)
  end)

  it("refuses invalid recipes with exit 2, naming the file and the problem", function()
    local s = S.sandbox()
    local cases = {
      { "return nil", "it returns nothing, not a table of phases" },
      { "return 42", "it returns a number, not a table of phases" },
      { "return { name = 'x' }", "it has no phases" },
      { "return { phases = {} }", "phases is empty" },
      { "return { phases = { { run = function() end } } }", "phase 1 has no name" },
      { "return { phases = { { name = 'a', run = function() end }, { name = 'a', run = function() end } } }",
        "phase a appears twice" },
      { "return { phases = { { name = 'a' } } }", "phase a has no run function" },
      { "return { phases = { { name = 'a b', run = function() end } } }", 'invalid name "a b"' },
      { "return { phases = { { name = 'a', run = function() end, revert = 1 } } }", "revert must be a function" },
      { "return { phases = = }", "unexpected symbol" },
      { "error('no config')", "it raised an error while loading: .*no config" },
    }
    for i, c in ipairs(cases) do
      local name = "bad" .. i .. ".lua"
      s:write(name, c[1])
      local r = s:relua({ "run", name, "T" })
      assert.are.equal(2, r.code, c[1])
      assert.matches("invalid recipe " .. esc(name) .. ": .*" .. c[2], r.stderr)
    end
    -- the short form too, for a script that returns something recipe-like
    s:write("dup.lua", "return { phases = { { name = 'a', run = print }, { name = 'a', run = print } } }")
    local r = s:relua({ "dup.lua", "T" })
    assert.are.equal(2, r.code)
    assert.matches("invalid recipe dup%.lua: phase a appears twice", r.stderr)
    s:write("nophases.lua", "return { { name = 'a', run = print } }")
    r = s:relua({ "nophases.lua", "T" })
    assert.are.equal(2, r.code)
    assert.matches("invalid recipe nophases%.lua: it has no phases", r.stderr)
    r = s:relua({ "run", "missing.lua", "T" })
    assert.are.equal(2, r.code)
    assert.matches("cannot open recipe missing%.lua", r.stderr)
    assert.is_false(s:exists(".relua"))
  end)

  it("refuses a missing ticket or stray arguments with exit 2", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    local r = s:relua({ "release.lua" })
    assert.are.equal(2, r.code)
    assert.matches("no ticket given", r.stderr)
    r = s:relua({ "release.lua", "1", "2" })
    assert.are.equal(2, r.code)
    r = s:relua({ "release.lua", "1", "--frob" })
    assert.are.equal(2, r.code)
    assert.matches("unknown option %-%-frob", r.stderr)
    r = s:relua({ "run" })
    assert.are.equal(2, r.code)
    assert.matches("no recipe given", r.stderr)
  end)

  it("keeps the ledger under $RELUA_HOME/releases when it is set #folder", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    local r = s:relua({ "release.lua", "9" }, { RELUA_HOME = s:path("home") })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(s:exists("home/releases/9.json"))
    assert.is_true(s:exists("home/releases/9.log"))
    assert.is_false(s:exists(".relua"))
    r = s:relua({ "status", "9" }, { RELUA_HOME = s:path("home") })
    assert.are.equal(0, r.code)
    assert.matches("ticket 9: done", r.stdout)
  end)
end)

describe("one run per ticket", function()
  after_each(S.cleanup)

  it("refuses a second run on the same ticket with exit 3 naming the holder", function()
    local s = S.sandbox()
    s:write("slow.lua", [[return { phases = {
      { name = "wait", run = function(r) r:sh("touch started; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done") end } } }]])
    s:write("fast.lua", [[return { phases = { { name = "quick", run = function(r) end } } }]])
    local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
    local r = h.sh(string.format(
      "{ %s slow.lua T7 >first.out 2>&1 & pid=$!; i=0; while [ ! -f started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; " ..
      "%s slow.lua T7; echo \"second=$?\"; %s fast.lua T8 >/dev/null 2>&1; echo \"other=$?\"; echo \"pid=$pid\"; " ..
      "%s status T7 > status.out; touch go; wait $pid; echo \"first=$?\"; }",
      h.quote(bin), h.quote(bin), h.quote(bin), h.quote(bin)), { cwd = s.dir, env = { RELUA_HOME = false, RELUA_STORE = s.store_url or false } })
    assert.matches("second=3", r.stdout, 1, r.stderr)
    assert.matches("other=0", r.stdout) -- another ticket is not blocked
    -- status reads without waiting for the lock, and names the run in progress
    assert.matches("ticket T7: running now %(pid=%d+ host=%S+ since=", s:read("status.out"))
    assert.matches("running%s+wait", s:read("status.out"))
    assert.matches("first=0", r.stdout)
    local pid = r.stdout:match("pid=(%d+)")
    assert.matches("ticket T7 is locked by another run %(pid=" .. pid .. " host=%S+ since=%d%d%d%d%-%d%d%-%d%dT[%d:]+Z%)", r.stderr)
    -- released with the run: a third run proceeds
    assert.are.equal(0, s:relua({ "slow.lua", "T7" }).code)
  end)

  it("Ctrl-C during a phase stops it, records failed rc=130 and releases the lock", function()
    local s = S.sandbox()
    s:write("slow.lua", [[return { phases = {
      { name = "a", run = function(r) end },
      { name = "b", run = function(r) r:sh("touch started; sleep 20") end },
      { name = "c", run = function(r) io.open("c-ran", "w"):close() end } } }]])
    local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
    local r = h.sh(string.format(
      "{ %s slow.lua T >out 2>err & pid=$!; i=0; while [ ! -f started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; " ..
      "kill -INT $pid; wait $pid; echo \"rc=$?\"; }", h.quote(bin)), { cwd = s.dir, env = { RELUA_HOME = false, RELUA_STORE = s.store_url or false } })
    assert.matches("rc=130", r.stdout)
    assert.matches("release interrupted in phase b %(rc=130%)%. Resume: relua slow%.lua T %-%-from=b", s:read("err"))
    assert.same({ a = "done", b = "failed", c = "pending" }, s:statuses("T"))
    assert.are.equal(130, s:state("T").phases[2].rc)
    assert.matches("phase=b event=failed rc=130", s:log_text("T"))
    assert.is_false(s:exists("c-ran"))
    -- the lock is free
    s:write("slow.lua", [[return { phases = {
      { name = "a", run = function(r) end }, { name = "b", run = function(r) end },
      { name = "c", run = function(r) io.open("c-ran", "w"):close() end } } }]])
    assert.are.equal(0, s:relua({ "slow.lua", "T" }).code)
    assert.is_true(s:exists("c-ran"))
  end)
end)

describe("a corrupt state file", function()
  after_each(S.cleanup)

  local bad = {
    { "garbage", "not json at all", "does not parse" },
    { "truncated", '{\n  "phases": [\n    {\n      "name": "prep', "does not parse" },
    { "empty", "", "is empty" },
    { "not an object", "42", "not a JSON object" },
    { "future schema", '{"schema": 2, "ticket": "5", "recipe": {"path": "/x"}, "phases": [{"name": "prepare", "status": "done"}]}',
      "unknown schema version 2" },
    { "no schema", '{"ticket": "5", "phases": []}', "no schema version" },
    { "bad status", '{"schema": 1, "ticket": "5", "recipe": {"path": "/x"}, "phases": [{"name": "prepare", "status": "weird"}]}',
      "unknown status" },
    { "other ticket", '{"schema": 1, "ticket": "6", "recipe": {"path": "/x"}, "phases": [{"name": "prepare", "status": "done"}]}',
      "belongs to ticket 6" },
  }
  for _, c in ipairs(bad) do
    it("is refused with exit 2 and its path, and left untouched: " .. c[1] .. " #folder", function()
      local s = S.sandbox()
      s:write("release.lua", FOUR)
      s:write(".relua/releases/5.json", c[2])
      for _, args in ipairs({ { "release.lua", "5" }, { "status", "5" }, { "revert", "5" }, { "release.lua", "5", "--dry-run" } }) do
        local r = s:relua(args)
        assert.are.equal(2, r.code, table.concat(args, " ") .. ": " .. r.stderr)
        assert.matches(esc(".relua/releases/5.json"), r.stderr)
        assert.matches(c[3], r.stderr)
        assert.are.equal(c[2], s:read(".relua/releases/5.json"))
      end
      assert.is_false(s:exists("ran.txt"))
      local r = s:relua({ "list" })
      assert.are.equal(0, r.code)
      assert.matches("5%s+unreadable: ", r.stdout)
    end)
  end
end)

describe("relua status, log and list", function()
  after_each(S.cleanup)

  it("status shows the phases, the failure, the state and the next command", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    s:write("broken", "")
    s:relua({ "release.lua", "1234" })
    local r = s:relua({ "status", "1234" })
    assert.are.equal(0, r.code)
    assert.matches("ticket 1234: failed in phase migrate %(rc=1%)", r.stdout)
    assert.matches("done%s+prepare", r.stdout)
    assert.matches("failed%s+migrate%s+rc=1", r.stdout)
    assert.matches("pending%s+verify", r.stdout)
    assert.matches('BASE_SHA = "abc123"', r.stdout)
    assert.matches("steps recorded: backup%-db %(prepare%)", r.stdout)
    assert.matches("next: relua release%.lua 1234 %-%-from=migrate", r.stdout)
    assert.matches("output of phase migrate: [^\n]*1234/migrate%.out", r.stdout)
    if not s.store_url then
      assert.matches("output of phase migrate: %.relua/releases/1234/migrate%.out", r.stdout)
    end
    r = s:relua({ "status", "1234", "--json" })
    assert.are.equal(0, r.code)
    local v = require("relua.json").decode(r.stdout)
    assert.are.equal("failed", v.status)
    assert.same({ phase = "migrate", rc = 1, msg = v.failed.msg }, v.failed)
    assert.are.equal("abc123", v.state.BASE_SHA)
    assert.are.equal("migrate", v.phases[2].name)
    assert.matches("%-%-from=migrate", v.next)
    r = s:relua({ "status", "4321" })
    assert.are.equal(2, r.code)
    assert.matches("no release recorded for ticket 4321", r.stderr)
    assert.are.equal(2, s:relua({ "status", "../etc" }).code)
  end)

  it("log prints the audit log; list shows every ticket", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    assert.are.equal(0, s:relua({ "release.lua", "A1" }).code)
    s:write("broken", "")
    assert.are.equal(1, s:relua({ "release.lua", "B2" }).code)
    local r = s:relua({ "log", "B2" })
    assert.are.equal(0, r.code)
    assert.are.equal(s:log_text("B2"), r.stdout)
    assert.matches("phase=migrate event=failed rc=1", r.stdout)
    r = s:relua({ "list" })
    assert.are.equal(0, r.code)
    assert.matches("A1%s+done", r.stdout)
    assert.matches("B2%s+failed in migrate %(rc=1%)", r.stdout)
    assert.are.equal(2, s:relua({ "log", "nope" }).code)
    r = s:relua({ "list", "--json" })
    assert.are.equal(0, r.code)
    local items = require("relua.json").decode(r.stdout)
    assert.are.equal("A1", items[1].ticket)
    assert.are.equal("done", items[1].status)
    assert.same({ "B2", "failed", "migrate", 1 }, { items[2].ticket, items[2].status, items[2].phase, items[2].rc })
    local e = S.sandbox()
    r = e:relua({ "list" })
    assert.are.equal(0, r.code)
    assert.matches("no releases recorded", r.stdout)
  end)
end)

describe("relua revert", function()
  after_each(S.cleanup)

  it("reverts done and failed phases in reverse order, logged, and reports phases without revert", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    s:write("broken", "")
    s:relua({ "release.lua", "1234" })
    os.remove(s:path("ran.txt"))
    local r = s:relua({ "revert", "1234" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("revert-migrate\nrevert-prepare\n", s:read("ran.txt"))
    assert.same({ "migrate:revert", "migrate:reverted", "prepare:revert", "prepare:reverted" },
      s:events("1234", { revert = true, reverted = true }))
    assert.same({ prepare = "reverted", migrate = "reverted", ticket = "pending", verify = "pending" }, s:statuses("1234"))
    assert.matches("ticket 1234 reverted", r.stdout)
    -- the reverted phase's steps run again on the next release
    assert.is_nil(s:state("1234").steps["backup-db"])
    os.remove(s:path("broken"))
    os.remove(s:path("ran.txt"))
    assert.are.equal(0, s:relua({ "release.lua", "1234" }).code)
    assert.are.equal("prepare\nbackup-db\nmigrate\nticket\nverify\n", s:read("ran.txt"))
    -- a phase without revert is reported and logged
    os.remove(s:path("ran.txt"))
    r = s:relua({ "revert", "1234" })
    assert.are.equal(0, r.code)
    -- listed in the order they are undone, newest first, with or without a revert
    assert.matches("revert of ticket 1234, newest phase first:\n  verify: revert\n  ticket: has no revert: nothing undone, it stays done\n"
      .. "  migrate: revert\n  prepare: revert\nphase verify: reverting\n", r.stdout)
    assert.are.equal("revert-verify\nrevert-migrate\nrevert-prepare\n", s:read("ran.txt"))
    assert.same({ "ticket:no-revert" }, s:events("1234", { ["no-revert"] = true }))
    r = s:relua({ "revert", "1234" })
    assert.are.equal(0, r.code)
    assert.matches("nothing undone", r.stdout) -- ticket has no revert and stays done
  end)

  it("halts on a failed revert, which can be re-run", function()
    local s = S.sandbox()
    s:write("r.lua", [[
local function mark(k) local f = assert(io.open("ran.txt", "a")) f:write(k, "\n") f:close() end
return { phases = {
  { name = "a", run = function() end, revert = function() mark("revert-a") end },
  { name = "b", run = function() end, revert = function(r)
      mark("revert-b")
      if io.open("stuck") then r:sh("exit 5") end
    end },
  { name = "c", run = function() end, revert = function() mark("revert-c") end } } }]])
    assert.are.equal(0, s:relua({ "r.lua", "X" }).code)
    s:write("stuck", "")
    local r = s:relua({ "revert", "X" })
    assert.are.equal(1, r.code)
    assert.matches("revert failed in phase b %(rc=5%)%. Fix the cause, then run: relua revert X", r.stderr)
    assert.are.equal("revert-c\nrevert-b\n", s:read("ran.txt"))
    assert.matches("phase=b event=revert%-failed rc=5", s:log_text("X"))
    assert.same({ a = "done", b = "done", c = "reverted" }, s:statuses("X"))
    os.remove(s:path("stuck"))
    r = s:relua({ "revert", "X" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("revert-c\nrevert-b\nrevert-b\nrevert-a\n", s:read("ran.txt"))
    assert.are.equal(2, s:relua({ "revert", "nope" }).code)
  end)

  it("needs the recipe it recorded, or one given with --recipe", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    assert.are.equal(0, s:relua({ "release.lua", "7" }).code)
    os.rename(s:path("release.lua"), s:path("moved.lua"))
    local r = s:relua({ "revert", "7" })
    assert.are.equal(2, r.code)
    assert.matches("the recipe of ticket 7 is gone: " .. esc(s:path("release.lua")), r.stderr)
    assert.matches("relua revert 7 %-%-recipe=PATH", r.stderr)
    os.remove(s:path("ran.txt"))
    r = s:relua({ "revert", "7", "--recipe=moved.lua" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("revert-verify\nrevert-migrate\nrevert-prepare\n", s:read("ran.txt"))
  end)
end)

describe("a changed recipe", function()
  after_each(S.cleanup)

  it("is allowed, logged with both hashes and shown by status", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    s:write("broken", "")
    s:relua({ "release.lua", "1234" })
    local old = s:state("1234").recipe.sha256
    os.remove(s:path("broken"))
    s:write("release.lua", FOUR .. "\n-- fixed the migration\n")
    local r = s:relua({ "status", "1234" })
    assert.matches("the recipe file has changed since the last run", r.stdout)
    r = s:relua({ "release.lua", "1234", "--from=migrate" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("the recipe changed since the last run", r.stdout)
    local new = s:state("1234").recipe.sha256
    assert.are_not.equal(old, new)
    local line = s:log_text("1234"):match("[^\n]*event=recipe%-changed[^\n]*")
    assert.truthy(line)
    assert.matches("new=" .. new, line)
    assert.matches("old=" .. old, line)
    r = s:relua({ "status", "1234" })
    assert.matches("the recipe changed during this release %(.*sha256 " .. old:sub(1, 12) .. " %-> " .. new:sub(1, 12) .. "%)", r.stdout)
  end)
end)

describe("--dry-run", function()
  after_each(S.cleanup)

  it("changes nothing and says what would run, be skipped, and what is recorded", function()
    local s = S.sandbox()
    s:write("release.lua", FOUR)
    local r = s:relua({ "release.lua", "1234", "--dry-run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_false(s:exists(".relua"))
    assert.is_false(s:exists("ran.txt.never"))
    assert.matches("phase prepare: would run", r.stdout)
    assert.matches("%[dry%-run%] would set state BASE_SHA = \"abc123\"", r.stdout)
    assert.matches("%[dry%-run%] would run step backup%-db", r.stdout)
    assert.matches("%[dry%-run%] would run: if %[ %-f broken %]", r.stdout)
    -- after a failed run: state and log are byte-identical after a dry run
    s:write("broken", "")
    s:relua({ "release.lua", "1234" })
    local _, version = s:state("1234")
    local log = s:log_text("1234")
    r = s:relua({ "release.lua", "1234", "--dry-run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase prepare: done, would be skipped", r.stdout)
    assert.matches("phase migrate: would run", r.stdout)
    assert.matches("backup%-db %(phase prepare%): {\"file\":\"db%.tar\",\"size\":3}", r.stdout)
    assert.are.equal(version, select(2, s:state("1234")))
    assert.are.equal(log, s:log_text("1234"))
    r = s:relua({ "revert", "1234", "--dry-run" })
    assert.are.equal(0, r.code)
    assert.matches("phase migrate: would revert", r.stdout)
    assert.are.equal(version, select(2, s:state("1234")))
  end)
end)
