-- The enforcing core driven from Lua (relua.core.ledger, relua.core.store): what holds
-- whatever the Lua caller does, the folder store, control records, and the failure record.
local h = require "support.h"
local S = require "support.release"
local ledger = require "relua.core.ledger"
local store = require "relua.core.store"
local json = require "relua.json"

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function fresh(ticket, names)
  local phases = json.array()
  for i, n in ipairs(names) do phases[i] = { name = n, status = "pending" } end
  return {
    schema = ledger.SCHEMA, ticket = ticket, created = ledger.now(),
    recipe = { path = "/r.lua", name = "r" }, phases = phases, state = {}, steps = {},
  }
end

-- A ledger for ticket T in a fresh folder, with phases a, b, c saved.
local function open_abc()
  local dir = h.tmpdir() .. "/releases"
  local lg = assert(ledger.open(dir, "T"))
  lg:save(fresh("T", { "a", "b", "c" }))
  return lg, dir
end

describe("the core refuses to write what it would refuse to read", function()
  after_each(S.cleanup)

  it("lg:save of a phase with an unknown status raises and writes nothing", function()
    local dir = h.tmpdir() .. "/releases"
    local lg <close> = assert(ledger.open(dir, "T"))
    local st = fresh("T", { "a" })
    st.phases[1].status = "bogus"
    local ok, err = pcall(lg.save, lg, st)
    assert.is_false(ok)
    assert.matches("phase a has an unknown status", tostring(err))
    assert.is_nil(io.open(dir .. "/T.json"))
  end)

  it("refuses steps or state that are not objects, and fields of the wrong type", function()
    local lg <close> = open_abc()
    for _, bad in ipairs({
      function(s) s.steps = { 1, 2 } end,
      function(s) s.state = { "x" } end,
      function(s) s.phases[1].rc = "one" end,
      function(s) s.phases[1].failure = { rc = 1, message = 2 } end,
      function(s) s.recipe.sha256 = 42 end,
      function(s) s.phases[2].name = "a" end,
    }) do
      local s = lg:state()
      bad(s)
      local ok = pcall(lg.save, lg, s)
      assert.is_false(ok)
    end
    -- what is stored is still the sound state
    local st = assert(ledger.open(h.tmpdir(), "X")) -- another ticket: unrelated
    st:close()
    assert.same({ "a", "b", "c" }, (function()
      local names = {}
      for i, p in ipairs(lg:state().phases) do names[i] = p.name end
      return names
    end)())
  end)

  it("lg:save cannot mark a phase done: only the runner records phases", function()
    local lg <close> = open_abc()
    local s = lg:state()
    s.phases[1].status = "done"
    local ok, err = pcall(lg.save, lg, s)
    assert.is_false(ok)
    assert.matches("cannot set phase a to done %(it is recorded pending%)", tostring(err))
    assert.are.equal("pending", lg:state().phases[1].status)
  end)
end)

describe("the runner decides where a run starts", function()
  after_each(S.cleanup)

  it("ignores skip = true for a phase that is pending: phases run in order", function()
    local lg <close> = open_abc()
    local ran = {}
    local plan = {}
    for i, n in ipairs({ "a", "b", "c" }) do
      plan[i] = { name = n, skip = (n == "a"), fn = function() ran[#ran + 1] = n end }
    end
    assert.is_true(lg:run(plan, {}))
    assert.same({ "a", "b", "c" }, ran)
    for _, p in ipairs(lg:state().phases) do assert.are.equal("done", p.status) end
  end)

  it("starts at the first phase not done, whatever the plan says, and logs the rest skipped", function()
    local lg <close>, dir = open_abc()
    local ran = {}
    local plan = {}
    for i, n in ipairs({ "a", "b", "c" }) do
      plan[i] = { name = n, fn = function() ran[#ran + 1] = n if n == "b" and #ran < 3 then error("b fails") end end }
    end
    local ok, name = lg:run(plan, {})
    assert.is_false(ok)
    assert.are.equal("b", name)
    assert.are.equal(2, lg:start())
    ran = { "x", "y" }
    assert.is_true(lg:run(plan, {}))
    assert.same({ "x", "y", "b", "c" }, ran)  -- a was not run again
    assert.matches("phase=a event=skipped reason=done", h.slurp(dir .. "/T.log"))
  end)

  it("refuses --from past a phase that is not done, and a plan that is not the record", function()
    local lg <close> = open_abc()
    local plan = {}
    for i, n in ipairs({ "a", "b", "c" }) do plan[i] = { name = n, fn = function() end } end
    local i, msg, hint = lg:start("c")
    assert.is_nil(i)
    assert.matches("cannot start at phase c: the earlier phase a is not done %(pending%)", msg)
    assert.matches("%-%-from=a", hint)
    assert.has_error(function() lg:run(plan, {}, "run", "c") end)
    assert.has_error(function() lg:run({ plan[2], plan[1], plan[3] }, {}) end)
    assert.has_error(function() lg:run({ plan[1] }, {}) end)
    for _, p in ipairs(lg:state().phases) do assert.are.equal("pending", p.status) end
  end)
end)

describe("readers get copies", function()
  after_each(S.cleanup)

  it("changing paths() or state() changes nothing in the core", function()
    local lg <close>, dir = open_abc()
    local other = h.tmpdir()
    local p = lg:paths()
    p.out = other
    p.ticket = "U"
    lg:state().phases[1].status = "done"
    lg:set("K", { list = { 1, 2 } })
    local v = lg:get("K")
    v.list[1] = 99
    assert.are.equal(1, lg:get("K").list[1])
    assert.are.equal("pending", lg:state().phases[1].status)
    assert.are.equal(dir .. "/T", lg:paths().out)
    local st = json.decode(h.slurp(dir .. "/T.json"))
    assert.are.equal("T", st.ticket)
    assert.are.equal("pending", st.phases[1].status)
    assert.is_nil(io.open(other .. "/a.out"))
  end)
end)

describe("Store:ledger", function()
  after_each(S.cleanup)

  it("returns a ledger with its methods when relua.core.ledger was never required", function()
    local d = h.tmpdir()
    local r = h.sh(h.quote(S.bin()) .. " -e " .. h.quote(string.format([[
      local st = assert(require("relua.core.store").open("folder:%s"))
      local lg = assert(st:ledger("T"))
      print(lg:version(), lg:paths().ticket)
      lg:close()]], d)))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("0\tT\n", r.stdout)
  end)
end)

describe("the core uses only what it owns", function()
  after_each(S.cleanup)

  it("reads and words a corrupt state with require, cjson and relua.json replaced", function()
    local d = h.tmpdir()
    os.execute("mkdir -p " .. h.quote(d .. "/home/releases"))
    h.spit(d .. "/home/releases/BAD.json", "{not json")
    h.spit(d .. "/home/releases/GOOD.json", json.encode(fresh("GOOD", { "a" })))
    local r = h.relua({ "-e", [[
      local store = require "relua.core.store"
      local ledger = require "relua.core.ledger"
      _G.require = function(name) error("the global require was called for " .. tostring(name)) end
      package.loaded["cjson.safe"] = { new = function() error("hijacked cjson") end }
      package.loaded["cjson"] = package.loaded["cjson.safe"]
      package.loaded["relua.json"] = { decode = function() error("hijacked relua.json") end }
      package.preload["cjson.safe"] = function() error("hijacked preload") end
      local st = assert(store.open("folder:" .. os.getenv("D") .. "/home"))
      local v, err, code = st:read("BAD")
      io.write(tostring(v), "|", tostring(code), "|", tostring(err), "\n")
      io.write(assert(st:read("GOOD")).ticket, "\n")
      local lg = assert(ledger.open(os.getenv("D") .. "/home/releases", "GOOD"))
      lg:set("K", 1)
      io.write(lg:get("K"), "\n")
    ]] }, { env = { D = d } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^nil|corrupt|the state file [^\n]*BAD%.json does not parse: [^\n]*line 1, column 2\nGOOD\n1\n$", r.stdout)
  end)
end)

describe("a ticket belongs to one recipe", function()
  after_each(S.cleanup)

  it("refuses another recipe on an existing ticket, exit 2 naming both, the record kept", function()
    local s = S.sandbox()
    s:write("a.lua", [[return { name = "deploy-a", phases = {
      { name = "one", run = function() end },
      { name = "two", run = function() error("two fails") end } } }]])
    s:write("b.lua", [[return { name = "deploy-b", phases = { { name = "solo", run = function() end } } }]])
    assert.are.equal(1, s:relua({ "a.lua", "T" }).code)
    local _, version = s:state("T")
    local r = s:relua({ "b.lua", "T" })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("ticket T belongs to recipe deploy%-a, not deploy%-b", r.stderr)
    assert.same({ one = "done", two = "failed" }, s:statuses("T"))
    assert.are.equal(version, select(2, s:state("T")))
    assert.are.equal(2, s:relua({ "b.lua", "T", "--dry-run" }).code)
  end)

  it("is enforced by the core: lg:save cannot change the recipe's name", function()
    local lg <close> = open_abc()
    local st = lg:state()
    st.recipe.name = "other"
    local ok, err = pcall(lg.save, lg, st)
    assert.is_false(ok)
    assert.are.equal("recipe-mismatch", err.code)
    assert.are.equal(2, err.exit)
    assert.matches("belongs to recipe r, not other", err.message)
  end)
end)

describe("the ledger never dirties the repository it releases", function()
  after_each(function() S.cleanup() require("support.gitfix").cleanup() end)

  it("a recipe's assert_clean passes on the first run in a repository that does not ignore .relua", function()
    local fix = require "support.gitfix"
    local s = S.sandbox()
    fix.repo(s.dir)
    s:write("release.lua", [[return { name = "rel", phases = {
      { name = "check", run = function() require("relua.git").open("."):assert_clean() end } } }]])
    fix.git(s.dir, "add", "release.lua")
    fix.git(s.dir, "commit", "-q", "-m", "recipe")
    local r = s:relua({ "release.lua", "1" })
    assert.are.equal(0, r.code, r.stderr)
    r = s:relua({ "release.lua", "2" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", fix.git(s.dir, "status", "--porcelain"))  -- git itself agrees
    -- a ledger made before relua wrote its .gitignore is not counted either
    os.remove(s.dir .. "/.relua/releases/.gitignore")
    assert.is_true(#fix.git(s.dir, "status", "--porcelain") > 0)
    r = s:relua({ "release.lua", "3" })
    assert.are.equal(0, r.code, r.stderr)
    -- and a real change still is, with advice that fits
    s:write("stray.txt", "x")
    r = s:relua({ "release.lua", "4" })
    assert.are.equal(1, r.code)
    assert.matches("Working tree is dirty: [^\n]*: stray%.txt\n", r.stderr)
    assert.matches("commit them, stash them %(git stash %-u%) or add them to %.gitignore", r.stderr)
    assert.not_matches("%.relua", r.stderr:match("Working tree is dirty[^\n]*"))
  end)
end)

describe("the failure record", function()
  after_each(S.cleanup)

  it("is written into the failed phase's entry and shown by relua status", function()
    local s = S.sandbox()
    s:write("r.lua", [[return { name = "r", phases = {
      { name = "ok", run = function() end },
      { name = "build", run = function(r)
          r:sh("i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done; echo 'token hunter2-secret-value' >&2; exit 7")
        end } } }]])
    local r = s:relua({ "r.lua", "F" }, { RELUA_SECRET_X = "hunter2-secret-value" })
    assert.are.equal(1, r.code)
    local st = s:state("F")
    local f = st.phases[2].failure
    assert.are.equal(7, f.rc)
    assert.are.equal("command-failed", f.code)
    assert.matches("command exited with 7", f.message)
    local lines = {}
    for l in f.tail:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(200, #lines)
    assert.matches("token ", lines[200])
    assert.are.equal("line 102", lines[1]) -- lines 102..300, then the stderr line
    assert.is_nil(f.tail:find("hunter2-secret-value", 1, true))
    assert.is_nil(st.phases[1].failure)
    r = s:relua({ "status", "F" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("failure of phase build: rc=7  code=command%-failed", r.stdout)
    assert.matches("  message: command exited with 7", r.stdout)
    assert.matches("  output %(last 200 lines%):\n    | line 102\n", r.stdout)
    assert.matches("    | line 300\n", r.stdout)
    -- a successful re-run of the phase clears it
    s:write("r.lua", [[return { name = "r", phases = { { name = "ok", run = function() end },
      { name = "build", run = function() end } } }]])
    assert.are.equal(0, s:relua({ "r.lua", "F" }).code)
    assert.is_nil(s:state("F").phases[2].failure)
  end)

  it("keeps at most 64 KiB of output, from a whole line", function()
    local s = S.sandbox()
    s:write("r.lua", [[return { name = "r", phases = { { name = "big", run = function(r)
      r:sh("i=1; while [ $i -le 150 ]; do printf 'row %03d %01000d\n' $i 0; i=$((i+1)); done; exit 1")
    end } } }]])
    assert.are.equal(1, s:relua({ "r.lua", "B" }).code)
    local tail = s:state("B").phases[1].failure.tail
    assert.is_true(#tail <= 64 * 1024)
    assert.is_true(#tail > 60 * 1024)
    assert.matches("^row %d%d%d 0", tail)
    assert.matches("row 150 0+\n?$", tail)
  end)

  it("records the code and hint of a structured error, with no tail when nothing was written", function()
    local s = S.sandbox()
    s:write("r.lua", [[return { name = "r", phases = { { name = "a", run = function()
      require("relua.error").raise("registry-down", "the registry answered 503", { hint = "try later" })
    end } } }]])
    assert.are.equal(1, s:relua({ "r.lua", "E" }).code)
    local f = s:state("E").phases[1].failure
    assert.are.equal("registry-down", f.code)
    assert.are.equal("try later", f.hint)
    assert.are.equal(1, f.rc)
    local r = s:relua({ "status", "E", "--json" })
    local v = json.decode(r.stdout)
    assert.are.equal("registry-down", v.phases[1].failure.code)
  end)
end)

describe("hostile state files (#folder)", function()
  after_each(S.cleanup)

  it("status refuses a state whose steps is a JSON array: exit 2, no traceback", function()
    local s = S.sandbox()
    local st = fresh("5", { "a" })
    st.steps = { { phase = "a" }, 2 }
    s:write(".relua/releases/5.json", json.encode(st))
    local r = s:relua({ "status", "5" })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("5%.json is not a relua ledger: steps is not an object", r.stderr)
    assert.not_matches("traceback", r.stderr)
  end)

  it("refuses a state path that is a FIFO or a symlink to a device, without hanging", function()
    local s = S.sandbox()
    s:write("r.lua", [[return { name = "r", phases = { { name = "a", run = function() end } } }]])
    os.execute("mkdir -p " .. h.quote(s.rel) .. " && mkfifo " .. h.quote(s.rel .. "/F.json")
      .. " && ln -s /dev/zero " .. h.quote(s.rel .. "/Z.json"))
    for _, t in ipairs({ "F", "Z" }) do
      for _, args in ipairs({ { "status", t }, { "r.lua", t }, { "revert", t }, { "log", t } }) do
        local r = h.sh("timeout 20 " .. h.quote(S.bin()) .. " " .. table.concat(args, " "),
          { cwd = s.dir, env = { RELUA_HOME = false, RELUA_STORE = false } })
        assert.are.equal(2, r.code, table.concat(args, " ") .. ": " .. r.stderr)
        assert.matches(t .. "%.json is not a regular file", r.stderr)
      end
    end
    local r = h.sh("timeout 20 " .. h.quote(S.bin()) .. " list", { cwd = s.dir, env = { RELUA_HOME = false, RELUA_STORE = false } })
    assert.are.equal(0, r.code)
    assert.matches("F%s+unreadable: [^\n]*not a regular file", r.stdout)
    assert.matches("Z%s+unreadable: [^\n]*not a regular file", r.stdout)
  end)
end)

describe("compare-and-swap", function()
  after_each(S.cleanup)

  it("a stale writer cannot overwrite a newer state", function()
    local lg <close>, dir = open_abc()
    local v1 = lg:version()
    assert.is_true(v1 > 0)
    -- another writer replaces the state behind this ledger's back
    local newer = fresh("T", { "a", "b", "c" })
    newer.state = { WHO = "the other writer" }
    local text = json.encode(newer, { pretty = true }) .. "\n"
    assert(require("relua.fs").write(dir .. "/T.json", text))
    local ok, err = pcall(lg.set, lg, "WHO", "the stale writer")
    assert.is_false(ok)
    assert.are.equal("conflict", err.code)
    assert.matches("a newer state was written by someone else; nothing was overwritten", err.message)
    assert.are.equal(text, h.slurp(dir .. "/T.json"))
  end)
end)

describe("control records", function()
  after_each(S.cleanup)

  it("are appended under the lane's lock after decide saw the current records, and listed as copies", function()
    local st = assert(store.open("folder:" .. h.tmpdir()))
    assert.same({}, st:controls("main"))
    local seen
    local rec = st:control_append("main", function(records)
      seen = records
      return { kind = "pause", sha = "abc", reason = "ci failed" }
    end)
    assert.same({}, seen)
    assert.same({ kind = "pause", sha = "abc", reason = "ci failed" }, rec)
    st:control_append("main", function(records)
      seen = records  -- luacheck: ignore 311
      records[1].kind = "tampered"          -- a copy: changes nothing stored
      return { kind = "unpause", sha = "abc", reason = "ci failed" }
    end)
    assert.are.equal("pause", st:controls("main")[1].kind)
    assert.is_nil(st:control_append("main", function(records)
      assert.are.equal(2, #records)
      return nil                            -- decide: append nothing
    end))
    assert.are.equal(2, #st:controls("main"))
    -- an error in decide is raised once the lane's lock is free again
    local ok, err = pcall(st.control_append, st, "main", function() error("decide broke") end)
    assert.is_false(ok)
    assert.matches("decide broke", tostring(err))
    assert.truthy(st:control_append("main", function() return { kind = "pause", sha = "def", reason = "deploy" } end))
    assert.same({ "main" }, st:lanes())
    assert.are.equal(3, #st:controls("main"))
    assert.has_error(function() st:control_append("main", function() return { 1, 2 } end) end)
    assert.has_error(function() st:controls("../x") end)
  end)

  it("lose nothing when 20 processes append at once", function()
    local d = h.tmpdir()
    local bin = S.bin()
    local parts = {}
    for i = 1, 20 do
      parts[#parts + 1] = string.format("%s -e %s &", h.quote(bin), h.quote(string.format([[
        local st = assert(require("relua.core.store").open("folder:%s"))
        st:control_append("main", function(records)
          return { n = %d, seen = #records }
        end)]], d, i)))
    end
    local r = h.sh(table.concat(parts, " ") .. " wait")
    assert.are.equal(0, r.code, r.stderr)
    local st = assert(store.open("folder:" .. d))
    local recs = st:controls("main")
    assert.are.equal(20, #recs)
    local ns = {}
    for i, rec in ipairs(recs) do
      assert.are.equal(i - 1, rec.seen)     -- each decided on every record before it
      ns[rec.n] = true
    end
    for i = 1, 20 do assert.is_true(ns[i]) end
  end)

  it("a corrupt record is refused with its place, never rewritten", function()
    local d = h.tmpdir()
    os.execute("mkdir -p " .. h.quote(d .. "/lanes"))
    h.spit(d .. "/lanes/main.jsonl", '{"kind":"pause"}\nnot json\n')
    local st = assert(store.open("folder:" .. d))
    local v, err, code = st:controls("main")
    assert.is_nil(v)
    assert.are.equal("corrupt", code)
    assert.matches("control record 2 of lane main is corrupt", err)
    assert.is_nil(st:control_append("main", function() return { kind = "x" } end))
    assert.are.equal('{"kind":"pause"}\nnot json\n', h.slurp(d .. "/lanes/main.jsonl"))
  end)
  it("a torn last line (an append that never finished) is cut back before the next append", function()
    local d = h.tmpdir()
    os.execute("mkdir -p " .. h.quote(d .. "/lanes"))
    h.spit(d .. "/lanes/main.jsonl", '{"kind":"pause","sha":"a"}\n{"kind":"unpa')
    local st = assert(store.open("folder:" .. d))
    assert.same({ { kind = "pause", sha = "a" } }, st:controls("main"))
    assert.truthy(st:control_append("main", function(records)
      assert.are.equal(1, #records)
      return { kind = "unpause", sha = "a" }
    end))
    assert.same({ { kind = "pause", sha = "a" }, { kind = "unpause", sha = "a" } }, st:controls("main"))
    assert.are.equal('{"kind":"pause","sha":"a"}\n{"kind":"unpause","sha":"a"}\n',
      h.slurp(d .. "/lanes/main.jsonl"))
  end)
end)

describe("the audit log", function()
  after_each(S.cleanup)

  it("a torn last line is cut back when the ticket is next locked, never glued to an event", function()
    local dir = h.tmpdir() .. "/releases"
    do
      local lg <close> = assert(ledger.open(dir, "T"))
      lg:save(fresh("T", { "a" }))
      lg:log("first")
    end
    local whole = h.slurp(dir .. "/T.log")
    h.spit(dir .. "/T.log", whole .. "2026-05-18T10:00:00Z ticket=T event=to")   -- a crash mid-write
    local lg <close> = assert(ledger.open(dir, "T"))
    lg:log("second")
    local text = h.slurp(dir .. "/T.log")
    assert.are.equal(whole, text:sub(1, #whole))
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:]+Z ticket=T event=second\n$", text:sub(#whole + 1))
  end)
end)

describe("relua store copy", function()
  after_each(S.cleanup)

  it("copies tickets into another folder store, where status, log and list read them", function()
    local s = S.sandbox()
    s:write("r.lua", [[return { name = "r", phases = {
      { name = "a", run = function(r) r.state.X = "x" end },
      { name = "b", run = function() if io.open("broken") then error("b broke") end end } } }]])
    s:write("broken", "")
    assert.are.equal(1, s:relua({ "r.lua", "T1" }).code)
    os.remove(s:path("broken"))
    assert.are.equal(0, s:relua({ "r.lua", "T2" }).code)
    local target = h.tmpdir() .. "/shared"
    local r = s:relua({ "store", "copy", "--to", "folder:" .. target })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("copied T1 to folder " .. esc(target), r.stdout)
    assert.matches("2 copied, 0 not copied", r.stdout)
    r = s:relua({ "status", "T1", "--store", target })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("ticket T1: failed in phase b", r.stdout)
    assert.matches('X = "x"', r.stdout)
    assert.are.equal(s:log_text("T1"), s:relua({ "log", "T1", "--store=" .. target }).stdout)
    r = s:relua({ "list" }, { RELUA_STORE = target })
    assert.matches("T1%s+failed in b", r.stdout)
    assert.matches("T2%s+done", r.stdout)
    -- the copy resumes where the original stopped
    r = s:relua({ "r.lua", "T1" }, { RELUA_STORE = target })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase a: done earlier, skipped", r.stdout)
    -- copying again: the target keeps its own record
    r = s:relua({ "store", "copy", "--to=" .. target, "T1" })
    assert.are.equal(1, r.code)
    assert.matches("T1: ticket T1 already has a state in the target store", r.stderr)
    assert.are.equal(2, s:relua({ "store", "copy" }).code)
    assert.are.equal(2, s:relua({ "store", "copy", "--to", target, "../x" }).code)
  end)
end)

describe("choosing a store", function()
  after_each(S.cleanup)

  it("refuses an unknown URL, and never shows a password", function()
    local s = S.sandbox()
    local r = s:relua({ "list", "--store=s3://bucket/x" })
    assert.are.equal(2, r.code)
    assert.matches("unknown store s3://bucket/x", r.stderr)
    r = s:relua({ "list" }, { RELUA_STORE = "postgres://relua:hunter2pw@127.0.0.1:1/relua" })
    assert.are_not.equal(0, r.code)
    assert.matches("postgres://relua@127%.0%.0%.1:1/relua", r.stderr)
    assert.is_nil(r.stderr:find("hunter2pw", 1, true))
    assert.is_nil(r.stdout:find("hunter2pw", 1, true))
  end)
end)
