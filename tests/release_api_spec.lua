-- The `r` API that recipes use, run in-process through relua.release.execute, plus
-- relua.ticket (what `relua status` and the REPL's ticket() read).
local h = require "support.h"
local S = require "support.release"
local release = require "relua.release"
local ticket = require "relua.ticket"

-- Runs a recipe table for a ticket in a sandbox; returns exit status, printed lines,
-- complaints, and the sandbox.
local function execute(recipe, tk, opts)
  opts = opts or {}
  local s = opts.sandbox or S.sandbox()
  local path = s:write("recipe.lua", "-- stands in for the recipe table\n")
  s.rel = s.dir .. "/home/releases"
  local said, complained = {}, {}
  local old = release.complain
  release.complain = function(l) complained[#complained + 1] = l end
  local ok, rc = pcall(release.execute, {
    recipe = release.validate(recipe, path), path = s:path(path), ticket = tk or "T",
    home = s.dir .. "/home", store_url = s.store_url, dry_run = opts.dry_run, from = opts.from,
    say = function(l) said[#said + 1] = l end,
  })
  release.complain = old
  if not ok then error(rc, 0) end
  return rc, table.concat(said, "\n"), table.concat(complained, "\n"), s
end

local function phases(...)
  local list = {}
  for i, fn in ipairs({ ... }) do list[i] = { name = "p" .. i, run = fn } end
  return { phases = list }
end

describe("r.state", function()
  after_each(S.cleanup)

  it("is durable before the assignment returns", function()
    local s = S.sandbox()
    local seen
    local rc = execute(phases(function(r)
      r.state.BASE_SHA = "abc"
      seen = assert(s:store():read("T")).state.BASE_SHA   -- another reader sees it
      r.state.COUNT = 3
      r.state.LIST = { "a", "b" }
      r.state.COUNT = nil
    end), "T", { sandbox = s })
    assert.are.equal(0, rc)
    assert.are.equal("abc", seen)
    local st = s:state("T").state
    assert.same({ BASE_SHA = "abc", LIST = { "a", "b" } }, st)
    assert.matches("phase=p1 event=state key=BASE_SHA", s:log_text("T"))
  end)

  it("reads back, iterates, and refuses what JSON cannot hold (state unchanged)", function()
    local got, keys, err1, err2
    local rc, _, _, s = execute(phases(function(r)
      r.state.A = "x"
      got = r.state.A
      keys = {}
      for k, v in pairs(r.state) do keys[#keys + 1] = k .. "=" .. tostring(v) end
      local ok
      ok, err1 = pcall(function() r.state.F = function() end end)
      assert(not ok)
      ok, err2 = pcall(function() r.state[1] = "x" end)
      assert(not ok)
    end))
    assert.are.equal(0, rc)
    assert.are.equal("x", got)
    assert.same({ "A=x" }, keys)
    assert.matches("cannot record F: json%.encode: cannot encode a function", tostring(err1))
    assert.matches("r%.state keys are strings", tostring(err2))
    assert.same({ A = "x" }, s:state("T").state)
  end)

  it("exports strings and numbers to the phase's processes, with RELUA_TICKET and RELUA_PHASE", function()
    local s = S.sandbox()
    local out = s.dir .. "/env.txt"
    local rc = execute(phases(function(r)
      r.state.SHA = "abc def"
      r.state.N = 42
      r.state.T = { 1 }
      r:sh('printf "%s|%s|%s|%s|%s|%s" "$SHA" "$N" "${T-unset}" "$RELUA_TICKET" "$RELUA_PHASE" "$EXTRA" > ' .. h.quote(out),
        { env = { EXTRA = "e" } })
    end), "1234", { sandbox = s })
    assert.are.equal(0, rc)
    assert.are.equal("abc def|42|unset|1234|p1|e", h.slurp(out))
  end)
end)

describe("r:step", function()
  after_each(S.cleanup)

  it("runs once per ticket, records any JSON value and returns it on retries", function()
    local s = S.sandbox()
    local calls, results = 0, {}
    local values = { "text", 7, 2.5, true, { a = { 1, 2 }, b = "c" } }
    local recipe = phases(function(r)
      for i, v in ipairs(values) do
        results[i] = r:step("k" .. i, function() calls = calls + 1 return v end)
      end
      results.none = r:step("none", function() calls = calls + 1 end)
    end, function(r)
      if r.state.FAIL_ONCE == nil then
        r.state.FAIL_ONCE = true
        error("second phase fails once")
      end
    end)
    local rc = execute(recipe, "T", { sandbox = s })
    assert.are.equal(1, rc)
    assert.are.equal(6, calls)
    assert.same(values[5], results[5])
    rc = execute(recipe, "T", { sandbox = s, from = "p1" })
    assert.are.equal(0, rc)
    assert.are.equal(6, calls) -- nothing ran again
    for i, v in ipairs(values) do assert.same(v, results[i]) end
    assert.is_nil(results.none)
    local steps = s:state("T").steps
    assert.are.equal("p1", steps.k1.phase)
    assert.matches("^%d%d%d%d%-", steps.k1.at)
    local log = s:log_text("T")
    assert.matches("phase=p1 event=step key=k1 status=done", log)
    assert.matches("phase=p1 event=step key=k1 status=reused", log)
  end)

  it("runs a step that failed again on the next run", function()
    local s = S.sandbox()
    local calls = 0
    local recipe = phases(function(r)
      r:step("flaky", function()
        calls = calls + 1
        if calls == 1 then error("network down") end
        return "ok"
      end)
    end)
    assert.are.equal(1, execute(recipe, "T", { sandbox = s }))
    assert.is_nil(s:state("T").steps.flaky)
    assert.matches('event=step key=flaky status=failed msg="[^"]*network down"', s:log_text("T"))
    assert.are.equal(0, execute(recipe, "T", { sandbox = s }))
    assert.are.equal(2, calls)
    assert.are.equal("ok", s:state("T").steps.flaky.result)
  end)

  it("refuses bad arguments as programmer errors", function()
    local e1, e2
    execute(phases(function(r)
      e1 = select(2, pcall(r.step, r, "", function() end))
      e2 = select(2, pcall(r.step, r, "k"))
    end))
    assert.matches("the key must be a non%-empty string", e1)
    assert.matches("a function is expected", e2)
  end)
end)

describe("r:sh and r:run", function()
  after_each(S.cleanup)

  it("stream output to the phase's .out file and return the result", function()
    local res
    local rc, said, _, s = execute(phases(function(r)
      res = r:sh("echo out-line; echo err-line >&2")
      r:run({ "printf", "%s\n", "from run" })
    end))
    assert.are.equal(0, rc)
    assert.are.equal(0, res.code)
    assert.are.equal("out-line\n", res.stdout)
    local out = s:read("home/releases/T/p1.out")
    assert.matches("%$ echo out%-line; echo err%-line >&2\n", out)
    assert.matches("out%-line\n", out)
    assert.matches("err%-line\n", out)
    assert.matches("from run\n", out)
    assert.matches("%$ printf", said)
  end)

  it("fail the phase with the process's exit code, unless check=false", function()
    local res
    local rc, _, complained, s = execute(phases(function(r)
      res = r:sh("exit 3", { check = false })
      r:run({ "sh", "-c", "exit 9" })
    end))
    assert.are.equal(1, rc)
    assert.are.equal(3, res.code)
    assert.are.equal(9, s:state("T").phases[1].rc)
    assert.matches("release failed in phase p1 %(rc=9%)", complained)
  end)

  it("run again until the process exits 0 with tries and delay; the last try's exit fails the phase", function()
    local s = S.sandbox()
    local counter = s:write("left", "2\n")
    local cmd = "n=$(cat " .. h.quote(s:path(counter)) .. "); echo $((n - 1)) > " .. h.quote(s:path(counter))
      .. "; [ \"$n\" -le 0 ]"
    local res
    local rc, said = execute(phases(function(r)
      res = r:sh(cmd, { tries = 3, delay = 0 })
    end), "T", { sandbox = s })
    assert.are.equal(0, rc)
    assert.are.equal(0, res.code)
    assert.matches("exit 1 on try 1 of 3; next try in 0s", said, 1, true)
    assert.matches("passed on try 3 of 3", said, 1, true)
    s:write("left", "5\n")
    local rc2, _, _, s2 = execute(phases(function(r)
      r:run({ "sh", "-c", cmd }, { tries = 2 })
    end), "T2", { sandbox = s })
    assert.are.equal(1, rc2)
    assert.are.equal(1, s2:state("T2").phases[1].rc)
    assert.are.equal("3\n", s:read("left"))
    -- bad options are the recipe's mistake
    local rc3, _, _, s3 = execute(phases(function(r) r:sh("true", { tries = 0 }) end), "T3", { sandbox = s })
    assert.are.equal(1, rc3)
    assert.matches("tries must be an integer >= 1", s3:state("T3").phases[1].msg, 1, true)
  end)

  it("fail with rc=127 for a missing program", function()
    local rc, _, _, s = execute(phases(function(r) r:run({ "relua-no-such-program" }) end))
    assert.are.equal(1, rc)
    assert.are.equal(127, s:state("T").phases[1].rc)
    assert.matches("not found", s:state("T").phases[1].msg)
  end)

  it("in a dry run, say what they would run and run nothing", function()
    local s = S.sandbox()
    local marker = s.dir .. "/ran"
    local rc, said = execute(phases(function(r)
      local res = r:sh("touch " .. marker)
      assert(res.dry_run and res.code == 0)
      r:run({ "touch", marker })
      r.state.X = 1
      assert(r.state.X == 1)
      assert(r:step("s", function() error("not in a dry run") end) == nil)
    end), "T", { sandbox = s, dry_run = true })
    assert.are.equal(0, rc)
    assert.is_false(s:exists("ran"))
    assert.is_false(s:exists("home"))
    assert.matches("would run: touch ", said)
    assert.matches("would set state X = 1", said)
    assert.matches("would run step s", said)
  end)
end)

describe("r:act", function()
  after_each(S.cleanup)

  it("does the thing and logs it, or in a dry run only says so", function()
    local done = 0
    local recipe = phases(function(r)
      local v = r:act("push tag v1", function() done = done + 1 return "pushed" end)
      if not r.dry_run then assert(v == "pushed") else assert(v == nil) end
    end)
    local rc, said, _, s = execute(recipe, "T", { dry_run = true })
    assert.are.equal(0, rc)
    assert.are.equal(0, done)
    assert.matches("%[dry%-run%] would push tag v1", said)
    rc, said = execute(recipe, "T", { sandbox = s })
    assert.are.equal(0, rc)
    assert.are.equal(1, done)
    assert.matches('phase=p1 event=act msg="push tag v1"', s:log_text("T"))
  end)
end)

describe("r:include and r:log", function()
  after_each(S.cleanup)

  it("runs the matching files in sorted order with the same r", function()
    local s = S.sandbox()
    s:write("releases/1234-b.lua", "local r = ... r.state.ORDER = (r.state.ORDER or '') .. 'b'")
    s:write("releases/1234-a.lua", "return function(r) r.state.ORDER = (r.state.ORDER or '') .. 'a' end")
    s:write("releases/999-c.lua", "error('not mine')")
    local files
    local rc = execute(phases(function(r)
      files = r:include(s.dir .. "/releases/" .. r.ticket .. "-*.lua")
      r:log("included", #files, "files")
    end), "1234", { sandbox = s })
    assert.are.equal(0, rc)
    assert.are.equal("ab", s:state("1234").state.ORDER)
    assert.same({ s.dir .. "/releases/1234-a.lua", s.dir .. "/releases/1234-b.lua" }, files)
    local log = s:log_text("1234")
    assert.matches("event=include file=" .. s.dir:gsub("%p", "%%%0") .. "/releases/1234%-a%.lua", log)
    assert.matches('phase=p1 event=log msg="included 2 files"', log)
  end)

  it("a failing included file fails the phase", function()
    local s = S.sandbox()
    s:write("releases/1-x.lua", "error('per-ticket logic bug')")
    local rc = execute(phases(function(r) r:include(s.dir .. "/releases/1-*.lua") end), "1", { sandbox = s })
    assert.are.equal(1, rc)
    assert.matches("per%-ticket logic bug", s:state("1").phases[1].msg)
  end)
end)

describe("failure hints", function()
  after_each(S.cleanup)

  it("let another module add lines to the halt message", function()
    local seen
    require "relua.playbook"  -- registers its own provider first (the matching playbooks)
    release.add_hint(function(ctx)
      seen = ctx
      return { "playbook: release-" .. ctx.phase .. "-race.yaml" }
    end)
    local rc, _, complained = execute({ phases = {
      { name = "prepare", run = function() end },
      { name = "verify", run = function() error("unhealthy") end } } })
    table.remove(release.hints)
    assert.are.equal(1, rc)
    assert.matches("release failed in phase verify %(rc=1%)%. Resume: relua .*recipe%.lua T %-%-from=verify%. Roll back: relua revert T%.\n", complained)
    assert.matches("\nplaybook: release%-verify%-race%.yaml$", complained)
    assert.are.equal("verify", seen.phase)
    assert.are.equal(1, seen.rc)
    assert.matches("unhealthy", seen.message)
  end)
end)

describe("relua.ticket", function()
  after_each(S.cleanup)

  it("loads a ticket's state and log as tables", function()
    local s = S.sandbox()
    execute(phases(function(r) r.state.A = 1 end, function() error('with "quotes" and\nnewline') end), "42", { sandbox = s })
    -- where the sandbox's runs went: its home folder, or the store RELUA_TEST_STORE names
    local where = s.store_url and { store = s:store() } or { home = s.dir .. "/home" }
    local t = assert(ticket.load("42", where))
    assert.are.equal("42", t.id)
    assert.are.equal(1, t.state.state.A)
    assert.are.equal("failed", t.summary.status)
    assert.are.equal("p2", t.summary.phase)
    local last = t.log[#t.log]
    assert.are.equal("failed", last.event)
    assert.are.equal("p2", last.phase)
    assert.are.equal(1, last.rc)
    assert.matches('with "quotes" and\nnewline', last.msg)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", last.time)
    local none, err, code = ticket.load("43", where)
    assert.is_nil(none)
    assert.are.equal("ENOENT", code)
    assert.matches("no release recorded for ticket 43", err)
    assert.are.equal("EINVAL", select(3, ticket.load("../x")))
    local list = ticket.list(where)
    assert.are.equal(1, #list)
    assert.are.equal("42", list[1].ticket)
  end)

  it("parses logfmt lines", function()
    local ev = ticket.parse_line('2026-05-18T10:00:00Z ticket=1234 phase=prepare event=failed rc=1 msg="a \\"b\\" c\\\\d"')
    assert.same({ time = "2026-05-18T10:00:00Z", ticket = "1234", phase = "prepare", event = "failed",
      rc = 1, msg = 'a "b" c\\d' }, ev)
  end)
end)
