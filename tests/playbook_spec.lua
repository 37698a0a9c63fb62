-- The playbook engine and its commands: both formats, lint with file:line, the search path
-- and duplicate ids, detection timeouts, diagnose and recover on real tickets (a recipe run
-- by the relua binary in a sandbox), the failure message, status, playbook new --from.
local rs = require "support.release"
local h = require "support.h"
local pb = require "relua.playbook"

local RECIPE = [[
return { name = "probe-app", phases = {
  { name = "build", run = function(r) r:sh("echo building") end },
  { name = "verify", run = function(r) r:sh('cat status.txt; test "$(cat status.txt)" = ok') end },
  { name = "finish", run = function(r) r:sh("echo finished >> done.txt") end },
} }
]]

local PROBE_LUA = [[
return {
  id = "probe-refused",
  title = "The probe was refused",
  symptom = { phase = "verify", output = "probe refused" },
  detect = { { run = "test -f service.up", expect = { code = 0 } } },
  root_cause = "The service was still starting.",
  fix = { run = "echo ok > status.txt" },
  verify = { { run = 'test "$(cat status.txt)" = ok' } },
  resume = "verify",
}
]]

local PROBE_YAML = [[
- id: probe-refused-yaml
  symptom: |
    The verify phase prints
      [PROBE] ERROR: probe refused by the service
    and fails.
  detection:
    - command: test -f service.up && echo up
      expect: up
  root_cause: |
    The service was still starting.
  fix:
    bootstrap_script: verify.sh
    bootstrap_change: retry the probe
    adhoc: |
      echo ok > status.txt
  verify:
    - test "$(cat status.txt)" = ok
  services: [probe]
  tags: [release]
]]

local function env() return { RELUA_PLAYBOOKS = false, RELUA_STORE = false } end

local function failed_ticket(sb)
  sb:write("recipe.lua", RECIPE)
  sb:write("status.txt", "[PROBE] ERROR: probe refused by the service\n")
  local run = sb:relua({ "recipe.lua", "7" }, env())
  assert.are.equal(1, run.code, run.stderr)
  return run
end

-- Ticket 7 failed at verify, the playbook `src` in playbooks/, its detection confirmed
-- (service.up): `relua recover 7 --yes`'s result.
local function recover_with(sb, src)
  sb:write("playbooks/probe.lua", src)
  failed_ticket(sb)
  sb:write("service.up", "")
  return sb:relua({ "recover", "7", "--yes" }, env())
end

describe("playbook loading", function()
  it("loads the Lua form and the YAML template as the same thing", function()
    local lua, p1 = pb.parse(PROBE_LUA, "probe.lua")
    local yml, p2 = pb.parse(PROBE_YAML, "probe.yaml")
    assert.are.same({}, p1)
    assert.are.same({}, p2)
    assert.are.equal("probe-refused", lua[1].id)
    assert.are.equal("probe-refused-yaml", yml[1].id)
    assert.are.equal(1, yml[1].line)
    assert.are.same({ "[PROBE] ERROR: probe refused by the service" }, yml[1].symptom.quotes)
    assert.are.same({ "probe" }, yml[1].services)
    assert.are.equal("echo ok > status.txt\n", yml[1].fix.adhoc)
    assert.are.equal("up", yml[1].detect[1].expect.output[1].plain)
    assert.are.equal(0, lua[1].detect[1].expect.code)
    local failure = { phase = "verify", rc = 1, message = "command exited with 1",
      tail = "[PROBE] ERROR: probe refused by the service\n" }
    assert.is_true((pb.matches(lua[1], failure)))
    assert.is_true((pb.matches(yml[1], failure)))
    assert.is_false((pb.matches(lua[1], { phase = "build", rc = 1, message = "", tail = "probe refused" })))
    assert.is_false((pb.matches(yml[1], { phase = "verify", rc = 1, message = "", tail = "probe fine" })))
  end)

  it("loads the two examples of doc/playbooks.md, and they match the same failure", function()
    local doc = h.slurp(h.root .. "/doc/playbooks.md")
    local lua_src = assert(doc:match("```lua\n(%-%- playbooks/release%-verify%-race%.lua\n.-)```"))
    local yaml_src = assert(doc:match("```yaml\n(%- id: release%-verify%-race\n.-)```"))
    local lua, p1 = pb.parse(lua_src, "doc.lua")
    local yml, p2 = pb.parse(yaml_src, "doc.yaml")
    assert.are.same({}, p1)
    assert.are.same({}, p2)
    local failure = { phase = "verify", rc = 1, message = "command exited with 1: ./verify.sh",
      tail = "\u{2717} wikijs.healthy: unhealthy\n" }
    assert.is_true((pb.matches(lua[1], failure)))
    assert.is_true((pb.matches(yml[1], failure)))
    assert.are.same(lua[1].services, yml[1].services)
  end)

  it("matches quoted lines with placeholders in order", function()
    local pbs = pb.parse([[
id: pull-denied
symptom: |
  Error response from daemon: pull access denied for ...
]], "p.yaml")
    assert.is_true((pb.matches(pbs[1], { phase = "x", message = "",
      tail = "Error response from daemon: pull access denied for wiki:2, repository does not exist" })))
    assert.is_false((pb.matches(pbs[1], { phase = "x", message = "", tail = "Error response from daemon: timeout" })))
  end)

  it("reports every schema problem with file and line, never raising", function()
    local cases = {
      { "bad.yaml", "- id: a\n  symptom: [unclosed\n", 2, "bad YAML" },
      { "noid.yaml", "- title: no id\n  symptom: x\n", 1, "missing id" },
      { "unknown.yaml", "id: u\nsymptom: x\nsymtpom: y\n", 3, "unknown field symtpom" },
      { "type.lua", "return {\n  id = 't',\n  symptom = { phase = 'v' },\n  tags = 3,\n}\n", 4, "tags must be a list of strings" },
      { "pattern.lua", "return {\n  id = 'p',\n  symptom = { output = { match = '[unclosed' } },\n}\n", 3, "does not compile" },
      { "syntax.lua", "return {\n  id = 'p'\n  symptom = {}\n}\n", 3, "Lua syntax" },
      { "second.yaml", "- id: ok\n  symptom: '`x y z`'\n- id: bad\n  symptom: '`x`'\n  fix: 3\n", 5, "fix must be" },
      { "quickcmd.yaml", "id: q\nsymptom: '`x y z`'\ndetection:\n  - command: exit 0\n    quick: true\n", 3,
        "detection[1].quick is for a Lua check (check = function) that reads only the ticket: a command is never quick" },
      { "quicktype.lua", "return {\n  id = 'q',\n  symptom = { phase = 'v' },\n  detect = { { check = function() end, quick = 1 } },\n}\n", 4,
        "detect[1].quick must be true or false" },
    }
    for _, c in ipairs(cases) do
      local list, problems = pb.parse(c[2], c[1])
      assert.are.equal(1, #problems, c[1])
      assert.are.equal(c[3], problems[1].line, c[1] .. ": " .. problems[1].message)
      assert.matches(c[4], problems[1].message, 1, true)
      if c[1] == "second.yaml" then assert.are.equal("ok", list[1].id) end
    end
  end)

  it("survives arbitrary text (the loader the fuzzers call)", function()
    for _, text in ipairs({ "", "\0\1\2", "- - - -", "[[[", "return 1", "return nil", "return {{}}", "{", ": :",
        "id: [1, 2]\nsymptom: {}", "return { id = {}, symptom = 1 }", "error({code = 1})" }) do
      for _, name in ipairs({ "f.yaml", "f.lua" }) do
        local ok, list, problems = pcall(pb.parse, text, name)
        assert.is_true(ok, name .. ": " .. tostring(list))
        assert.are.equal("table", type(list))
        assert.are.equal("table", type(problems))
      end
    end
  end)
end)

describe("a playbook check that fails", function()
  it("tells the last line it printed, masked before it is shortened, after long lines too", function()
    local secret = require "relua.secret"
    local token = "tok-" .. string.rep("q", 30)
    secret.declare(token, "PROBE_TOKEN")
    -- a 4000-character line first (the search for the last line is linear), then the last
    -- line, long enough that the token straddles character 200 of it
    local last = string.rep("x", 185) .. " " .. token .. " end"
    local script = "printf '%s\\n' " .. h.quote(string.rep("{", 4000)) .. " " .. h.quote(last) .. " '  '; exit 3"
    local passed, detail = pb.run_check({ run = script }, { timeout = 10 })
    assert.is_false(passed)
    assert.matches("^exited with 3 %(expected 0%): x+ %*%*%*", detail)
    assert.is_nil(detail:find("tok-", 1, true))
    assert.is_nil(detail:find("{", 1, true))
  end)
end)

describe("relua playbook", function()
  local sb
  before_each(function() sb = rs.sandbox() end)
  after_each(function() rs.cleanup() end)

  it("lint prints file:line for each problem and exits 1", function()
    sb:write("pb/good.lua", PROBE_LUA)
    sb:write("pb/bad.yaml", "- id: bad\n  symptom: x\n  detection:\n    - command: [1\n")
    sb:write("pb/noid.lua", "return {\n  symptom = { phase = 'x' },\n}\n")
    local res = sb:relua({ "playbook", "lint", "pb" }, env())
    assert.are.equal(1, res.code, res.stdout .. res.stderr)
    assert.matches("pb/bad.yaml:4: bad YAML", res.stdout, 1, true)
    assert.matches("pb/noid.lua:1: missing id", res.stdout, 1, true)
    assert.matches("1 playbook checked, 2 problems", res.stdout, 1, true)
    local ok = sb:relua({ "playbook", "lint", "pb/good.lua" }, env())
    assert.are.equal(0, ok.code, ok.stdout)
    -- A free-text symptom that quotes nothing can never match: a warning.
    sb:write("pb2/vague.yaml", "id: vague\nsymptom: something went wrong\n")
    local w = sb:relua({ "playbook", "lint", "pb2" }, env())
    assert.are.equal(0, w.code)
    assert.matches("vague.yaml:1: warning: vague: the symptom quotes no error line", w.stdout, 1, true)
    local missing = sb:relua({ "playbook", "lint", "nowhere" }, env())
    assert.are.equal(2, missing.code)
  end)

  it("without --recipe, list, show and lint see ./playbooks, where playbook new writes", function()
    local new = sb:relua({ "playbook", "new", "my-fix" }, env())
    assert.are.equal(0, new.code, new.stderr)
    local list = sb:relua({ "playbook", "list" }, env())
    assert.are.equal(0, list.code, list.stderr)
    assert.matches("my%-fix +lua +here", list.stdout)
    assert.matches("release%-verify%-race +yaml +shipped", list.stdout)
    assert.are.equal("", list.stderr)
    assert.are.equal(0, sb:relua({ "playbook", "show", "my-fix" }, env()).code)
    -- the skeleton's empty symptom can never match: lint says so
    local lint = sb:relua({ "playbook", "lint" }, env())
    assert.are.equal(0, lint.code, lint.stdout)
    assert.matches("my-fix.lua:4: warning: my-fix: the symptom gives nothing to match", lint.stdout, 1, true)
    sb:write("playbooks/broken.lua", "return { id = 'broken', symptom = { phase = 'x' }, fix = 3 }\n")
    lint = sb:relua({ "playbook", "lint" }, env())
    assert.are.equal(1, lint.code, lint.stdout)
    assert.matches("broken.lua:1: broken: fix must be", lint.stdout, 1, true)
    -- in a source tree, the shipped set is found once (build/share/relua/playbooks links to playbooks/)
    local tree = h.relua({ "playbook", "list" }, { env = env() })
    assert.are.equal(0, tree.code, tree.stderr)
    assert.are.equal("", tree.stderr)
    assert.matches("release%-verify%-race +yaml +here", tree.stdout)
  end)

  it("searches the recipe's playbooks/, RELUA_PLAYBOOKS and the shipped set; a duplicate id names both files", function()
    sb:write("recipe.lua", RECIPE)
    sb:write("playbooks/probe.lua", PROBE_LUA)
    sb:write("extra/probe.yaml", PROBE_YAML)
    local e = env()
    e.RELUA_PLAYBOOKS = sb:path("extra")
    local list = sb:relua({ "playbook", "list", "--recipe", "recipe.lua" }, e)
    assert.are.equal(0, list.code, list.stderr)
    assert.matches("probe%-refused +lua +recipe", list.stdout)
    assert.matches("probe%-refused%-yaml +yaml +RELUA_PLAYBOOKS", list.stdout)
    assert.matches("release%-verify%-race +yaml +shipped", list.stdout)
    local show = sb:relua({ "playbook", "show", "probe-refused-yaml" }, e)
    assert.are.equal(0, show.code)
    assert.matches('matches when the output or message holds one of: "[PROBE] ERROR: probe refused by the service"', show.stdout, 1, true)
    assert.matches("ad hoc", show.stdout, 1, true)
    sb:write("extra/dup.lua", PROBE_LUA)
    local dup = sb:relua({ "playbook", "lint", "--recipe", "recipe.lua" }, e)
    assert.are.equal(1, dup.code)
    assert.matches("duplicate playbook id probe-refused: " .. sb:path("playbooks/probe.lua") .. ":2 and " ..
      sb:path("extra/dup.lua") .. ":2", dup.stdout, 1, true)
    assert.are.equal(2, sb:relua({ "playbook", "show", "nope" }, e).code)
    -- a RELUA_PLAYBOOKS folder that is not there is said, not silently searched
    e.RELUA_PLAYBOOKS = sb:path("extra") .. ":" .. sb:path("nowhere")
    local typo = sb:relua({ "playbook", "list", "--recipe", "recipe.lua" }, e)
    assert.matches("warning: RELUA_PLAYBOOKS names " .. sb:path("nowhere") .. ", which is not a folder", typo.stderr, 1, true)
    local lint = sb:relua({ "playbook", "lint", "--recipe", "recipe.lua" }, e)
    assert.matches("warning: RELUA_PLAYBOOKS names " .. sb:path("nowhere") .. ", which is not a folder", lint.stdout, 1, true)
  end)
end)

describe("diagnose and recover", function()
  local sb
  before_each(function() sb = rs.sandbox() end)
  after_each(function() rs.cleanup() end)

  it("a failed run lists the matching playbooks and the diagnose command", function()
    sb:write("playbooks/probe.lua", PROBE_LUA)
    local run = failed_ticket(sb)
    assert.matches("Matching playbooks:\n  probe-refused: The probe was refused", run.stderr, 1, true)
    assert.matches("Diagnose: relua diagnose 7", run.stderr, 1, true)
    -- status shows the same hints later.
    local st = sb:relua({ "status", "7" }, env())
    assert.matches("Matching playbooks:\n  probe-refused", st.stdout, 1, true)
  end)

  it("the failure message runs only quick detection checks: what they rule out is not suggested, and diagnose agrees", function()
    sb:write("playbooks/probe.lua", PROBE_LUA)  -- a command check: only diagnose runs it
    sb:write("playbooks/quick.lua", [[
local function phase_is(want)
  return function(ctx) return ctx.phase == want and ctx.state.VERSION == nil, "phase " .. tostring(ctx.phase) end
end
return {
  { id = "quick-yes", title = "Confirmed by the ticket", symptom = { phase = "verify" },
    detect = { { name = "the failed phase is verify", quick = true, check = phase_is("verify") } } },
  { id = "quick-no", title = "Ruled out by the ticket", symptom = { phase = "verify" },
    detect = { { name = "the failed phase is build", quick = true, check = phase_is("build") } } },
  { id = "quick-cmd", title = "A quick check that runs a command", symptom = { phase = "verify" },
    detect = { { name = "runs true", quick = true, check = function(ctx) return ctx:sh("true").code == 0 end } } },
}
]])
    local run = failed_ticket(sb)
    assert.matches("Matching playbooks:\n  quick-yes: Confirmed by the ticket\n" ..
      "  probe-refused: The probe was refused  (detection not run: relua diagnose runs it)\n" ..
      "  quick-cmd: A quick check that runs a command  (detection not run: relua diagnose runs it)\n" ..
      "Not these: the detection of quick-no ruled it out (relua diagnose 7 shows why)\n" ..
      "Diagnose: relua diagnose 7", run.stderr, 1, true)
    assert.is_nil(run.stderr:find("Ruled out by the ticket", 1, true), run.stderr)
    local st = sb:relua({ "status", "7" }, env())
    assert.matches("Not these: the detection of quick-no ruled it out", st.stdout, 1, true)
    local diag = sb:relua({ "diagnose", "7" }, env())
    assert.are.equal(0, diag.code, diag.stderr)
    assert.matches("quick-yes [confirmed]", diag.stdout, 1, true)
    assert.matches("quick-cmd [confirmed]", diag.stdout, 1, true)
    assert.matches("quick-no [not confirmed: its detection did not match]", diag.stdout, 1, true)
    assert.matches("the failed phase is build -> phase verify", diag.stdout, 1, true)
    -- all of them ruled out: no playbook is suggested
    assert(os.remove(sb:path("playbooks/probe.lua")))
    sb:write("playbooks/quick.lua", [[
return { id = "quick-no", title = "Ruled out by the ticket", symptom = { phase = "verify" },
  detect = { { quick = true, check = function(ctx) return ctx.phase == "build" end } } }
]])
    local again = sb:relua({ "recipe.lua", "7" }, env())
    assert.are.equal(1, again.code, again.stderr)
    assert.is_nil(again.stderr:find("Matching playbooks:", 1, true), again.stderr)
    assert.matches("No playbook matches this failure: the detection of quick-no ruled it out (relua diagnose 7 shows why). "
      .. "Once it is fixed, keep the fix as a playbook: relua playbook new ID --from 7", again.stderr, 1, true)
  end)

  it("no match: shows the failure and how to start a playbook from it; new --from pre-fills the symptom", function()
    local run = failed_ticket(sb)
    assert.matches("No playbook matches this failure", run.stderr, 1, true)
    local diag = sb:relua({ "diagnose", "7" }, env())
    assert.are.equal(0, diag.code)
    assert.matches("no playbook matches this failure", diag.stdout, 1, true)
    assert.matches("failure: phase verify, rc=1", diag.stdout, 1, true)
    assert.matches("  | [PROBE] ERROR: probe refused by the service", diag.stdout, 1, true)
    assert.matches("relua playbook new ID --from 7", diag.stdout, 1, true)
    local new = sb:relua({ "playbook", "new", "probe-fix", "--from", "7" }, env())
    assert.are.equal(0, new.code, new.stderr)
    local text = sb:read("playbooks/probe-fix.lua")
    assert.matches('phase = "verify"', text, 1, true)
    assert.matches('output = "[PROBE] ERROR: probe refused by the service"', text, 1, true)
    assert.are.equal(0, sb:relua({ "playbook", "lint", "playbooks" }, env()).code)
    local again = sb:relua({ "diagnose", "7" }, env())
    assert.matches("1. probe-fix [symptom matches; it has no detection checks]", again.stdout, 1, true)
    assert.are.equal(2, sb:relua({ "playbook", "new", "probe-fix", "--from", "7" }, env()).code)
    sb:relua({ "playbook", "new", "probe-yaml", "--yaml", "--from", "7" }, env())
    assert.matches("`[PROBE] ERROR: probe refused by the service`", sb:read("playbooks/probe-yaml.yaml"), 1, true)
    assert.are.equal(0, sb:relua({ "playbook", "lint", "playbooks" }, env()).code)
  end)

  it("a ticket whose run died in a phase is diagnosed as interrupted, not as rc=nil", function()
    sb:write("recipe.lua", [[
return { name = "dies", phases = { { name = "deploy", run = function(r) r:sh("echo deploying; kill -9 $PPID") end } } }
]])
    local run = sb:relua({ "recipe.lua", "9" }, env())
    assert.are_not.equal(0, run.code)
    assert.are.equal("running", sb:state("9").phases[1].status)
    local diag = sb:relua({ "diagnose", "9" }, env())
    assert.are.equal(0, diag.code, diag.stderr)
    assert.matches("ticket 9 failed in phase deploy (interrupted: the run died): the run died in this phase", diag.stdout, 1, true)
    assert.matches("failure: phase deploy, interrupted: the run died\n", diag.stdout, 1, true)
    assert.matches("  | $ echo deploying; kill -9 $PPID\n", diag.stdout, 1, true)  -- written before the command ran
    assert.is_nil(diag.stdout:find("nil", 1, true))
    local st = sb:relua({ "status", "9" }, env())
    assert.matches("release interrupted in phase deploy (the run died). Resume: relua recipe.lua 9 --from=deploy.", st.stdout, 1, true)
    local rec = sb:relua({ "recover", "9", "--yes" }, env())
    assert.are.equal(1, rec.code)
    assert.matches("no playbook matches the failure of ticket 9 (phase deploy, interrupted: the run died)", rec.stderr, 1, true)
  end)

  it("a malformed playbook is reported with file and line and skipped; the others still match", function()
    sb:write("playbooks/probe.lua", PROBE_LUA)
    sb:write("playbooks/broken.yaml", "- id: broken\n  symptom: x\n  fix: {run: [1}\n")
    sb:write("playbooks/typo.lua", "return { id = 'typo', symptom = { phase = 'verify' }, verfy = {} }\n")
    failed_ticket(sb)
    sb:write("service.up", "")
    local diag = sb:relua({ "diagnose", "7" }, env())
    assert.are.equal(0, diag.code)
    assert.matches("playbook skipped: " .. sb:path("playbooks/broken.yaml") .. ":3: bad YAML", diag.stderr, 1, true)
    assert.matches("playbook skipped: " .. sb:path("playbooks/typo.lua") .. ":1: typo: unknown field verfy", diag.stderr, 1, true)
    assert.matches("1. probe-refused [confirmed]", diag.stdout, 1, true)
  end)

  it("the shipped verify race is not confirmed when the service never comes up", function()
    sb:write("recipe.lua", [[
return { name = "svc", phases = { { name = "verify", run = function(r) r:sh("echo '\u{2717} svc.healthy: unhealthy'; exit 1") end } } }
]])
    assert.are.equal(1, sb:relua({ "recipe.lua", "8" }, env()).code)
    local e = env()
    e.RELEASE_VERIFY, e.RELEASE_VERIFY_WAIT = "false", "1"
    local diag = sb:relua({ "diagnose", "8" }, e)
    assert.are.equal(0, diag.code, diag.stderr)
    assert.matches("1. release-verify-race [not confirmed: its detection did not match]", diag.stdout, 1, true)
    assert.matches("still unhealthy after 1s", diag.stdout, 1, true)
  end)

  it("detection that hangs is killed with its process group at its timeout: not matched", function()
    sb:write("playbooks/hang.lua", [[
return { id = "hang", symptom = { phase = "verify" },
  detect = { { run = "sleep 60 & echo $! > bg.pid; wait", timeout = 1 } } }
]])
    failed_ticket(sb)
    local diag = sb:relua({ "diagnose", "7" }, env())
    assert.are.equal(0, diag.code)
    assert.matches("1. hang [not confirmed: its detection did not match]", diag.stdout, 1, true)
    assert.matches("timed out after 1s (its process group was killed): not matched", diag.stdout, 1, true)
    local pid = sb:read("bg.pid"):match("%d+")
    assert.truthy(pid)
    -- The background sleep is gone (or a zombie waiting for init to reap it).
    local status = h.slurp("/proc/" .. pid .. "/status")
    assert.is_true(status == "" or status:match("State:%s+Z") ~= nil, status)
  end)

  it("recover: fix, verify, resume under the lock, every stage in the audit log", function()
    sb:write("playbooks/probe.lua", PROBE_LUA)
    failed_ticket(sb)
    sb:write("service.up", "")
    local dry = sb:relua({ "recover", "7", "--dry-run" }, env())
    assert.are.equal(0, dry.code, dry.stderr)
    assert.matches("1. fix: run: echo ok > status.txt", dry.stdout, 1, true)
    assert.matches("dry run: nothing was changed", dry.stdout, 1, true)
    assert.matches("probe refused", sb:read("status.txt"), 1, true)
    -- Without a terminal it needs --yes.
    local noyes = sb:relua({ "recover", "7" }, env())
    assert.are.equal(2, noyes.code)
    assert.matches("pass --yes", noyes.stderr, 1, true)
    local rec = sb:relua({ "recover", "7", "--yes" }, env())
    assert.are.equal(0, rec.code, rec.stdout .. rec.stderr)
    local wanted = { ["playbook-detect"] = true, ["playbook-fix"] = true, ["playbook-verify"] = true,
      ["playbook-verified"] = true, run = true, start = true, done = true }
    local tail, seen = {}, false
    for _, e in ipairs(sb:events("7", wanted)) do
      if e:match("playbook") then seen = true end
      if seen then tail[#tail + 1] = e end
    end
    assert.are.same({ "verify:playbook-detect", "verify:playbook-fix", "verify:playbook-fix", "verify:playbook-verify",
      "verify:playbook-verified", "-:run", "verify:start", "verify:done", "finish:start", "finish:done" }, tail)
    assert.are.equal("probe-refused", sb:state("7").state["relua.playbooks"][1].id)
    assert.are.equal("finished\n", sb:read("done.txt"))
    -- The ticket is done now: recover explains and exits 2.
    local done = sb:relua({ "recover", "7", "--yes" }, env())
    assert.are.equal(2, done.code)
    assert.matches("ticket 7 has not failed (status: done): nothing to recover", done.stderr, 1, true)
    assert.are.equal(2, sb:relua({ "diagnose", "7" }, env()).code)
  end)

  it("recover holds the ticket's lock from detection to the end: a run started by the fix is refused", function()
    local bin = rs.bin()
    local rec = recover_with(sb, (PROBE_LUA:gsub('run = "echo ok > status.txt"', 'run = "' .. bin ..
      ' recipe.lua 7 2>concurrent.err; echo $? > concurrent.rc; echo ok > status.txt"')))
    assert.are.equal(0, rec.code, rec.stdout .. rec.stderr)
    assert.are.equal("3\n", sb:read("concurrent.rc"))
    assert.matches("locked", sb:read("concurrent.err"), 1, true)
    assert.matches("release 7 done", rec.stdout, 1, true)
  end)

  it("a playbook with resume = false fixes and verifies, then leaves the resume to the operator", function()
    local rec = recover_with(sb, (PROBE_LUA:gsub('resume = "verify"', "resume = false")))
    assert.are.equal(0, rec.code, rec.stdout .. rec.stderr)
    assert.matches("3. no resume (the playbook says resume = false)", rec.stdout, 1, true)
    assert.matches("not resuming (resume = false); continue with: relua recipe.lua 7", rec.stdout, 1, true)
    assert.are.equal("failed", sb:state("7").phases[2].status)
    assert.is_false(sb:exists("done.txt"))
    assert.are.equal("verified", sb:state("7").state["relua.playbooks"][1].result)
    assert.are.equal(0, sb:relua({ "recipe.lua", "7" }, env()).code)
  end)

  it("recover on a terminal shows the plan and asks before changing anything", function()
    local pty = require "support.pty"
    sb:write("playbooks/probe.lua", PROBE_LUA)
    failed_ticket(sb)
    sb:write("service.up", "")
    local penv = { RELUA_PLAYBOOKS = false, RELUA_HOME = false, RELUA_STORE = false }
    local no = pty.run({ { expect = "1\\. fix: run: echo ok > status\\.txt" }, { expect = "Apply it\\? \\[y/N\\]" },
      { send = "n\r" }, { expect = "nothing was changed" }, { wait_exit = true } },
      { args = { "recover", "7" }, cwd = sb.dir, env = penv })
    assert.is_true(no.ok, pty.explain(no))
    assert.are.equal(1, no.exit)
    assert.matches("probe refused", sb:read("status.txt"), 1, true)
    local yes = pty.run({ { expect = "Apply it\\? \\[y/N\\]" }, { send = "y\r" }, { expect = "release 7 done" }, { wait_exit = true } },
      { args = { "recover", "7" }, cwd = sb.dir, env = penv })
    assert.is_true(yes.ok, pty.explain(yes))
    assert.are.equal(0, yes.exit)
  end)

  it("recover on a locked ticket exits 3", function()
    sb:write("playbooks/probe.lua", PROBE_LUA)
    failed_ticket(sb)
    local ledger = require "relua.core.ledger"
    local lg = assert(ledger.open(sb.rel, "7"))
    local res = sb:relua({ "recover", "7", "--yes" }, env())
    lg:close()
    assert.are.equal(3, res.code, res.stderr)
    assert.matches("locked", res.stderr)
  end)

  it("a verify that fails leaves the ticket failed and resumable, and the playbook re-runnable", function()
    local rec = recover_with(sb, (PROBE_LUA:gsub("echo ok > status.txt", "echo still-refused > status.txt")))
    assert.are.equal(1, rec.code, rec.stdout .. rec.stderr)
    assert.matches("playbook probe-refused: verify failed", rec.stderr, 1, true)
    assert.matches("resumable", rec.stderr, 1, true)
    local st = sb:state("7")
    assert.are.equal("failed", st.phases[2].status)
    assert.are.equal("pending", st.phases[3].status)
    assert.are.equal("verify failed", st.state["relua.playbooks"][1].result)
    local evs = sb:events("7", { ["playbook-failed"] = true })
    assert.are.same({ "verify:playbook-failed" }, evs)
    -- The ticket resumes by hand once the cause is fixed.
    sb:write("status.txt", "ok\n")
    local run = sb:relua({ "recipe.lua", "7" }, env())
    assert.are.equal(0, run.code, run.stderr)
  end)

  it("a YAML playbook's ad hoc fix is shown, and run only with --adhoc", function()
    sb:write("playbooks/probe.yaml", PROBE_YAML)
    failed_ticket(sb)
    sb:write("service.up", "")
    local rec = sb:relua({ "recover", "7", "--yes" }, env())
    assert.are.equal(1, rec.code)
    assert.matches("echo ok > status.txt", rec.stdout, 1, true)
    assert.matches("the ad hoc fix was not run (pass --adhoc to run it)", rec.stdout, 1, true)
    local ok = sb:relua({ "recover", "7", "--yes", "--adhoc" }, env())
    assert.are.equal(0, ok.code, ok.stdout .. ok.stderr)
    assert.matches("release 7 done", ok.stdout, 1, true)
  end)

  it("a Lua playbook: expectations as functions, a fix function given the failure, ctx:run recorded like r:sh", function()
    sb:write("playbooks/ctx.lua", [[
return {
  id = "probe-ctx",
  symptom = { phase = "verify", output = { match = "probe %a+ by the service" } },
  detect = {
    { run = "cat status.txt", expect = function(res, ctx) return res.stdout:find("refused", 1, true) and ctx.rc == 1 end },
    { run = "cat status.txt", expect = { output = { match = "^%[PROBE%] ERROR" } } },
  },
  fix = function(ctx)
    local f = assert(io.open("ctx.txt", "w"))
    f:write(table.concat({ ctx.ticket, ctx.phase, tostring(ctx.rc), ctx.message, ctx.recipe.name,
      (ctx.tail:match("%[PROBE%][^\n]*")) }, "|"), "\n")
    f:close()
    ctx:run({ "sh", "-c", "echo ok > status.txt; echo fixed by ctx:run" })
  end,
  verify = { { run = "cat status.txt", expect = function(res) return res.stdout == "ok\n" end } },
}
]])
    failed_ticket(sb)
    local diag = sb:relua({ "diagnose", "7" }, env())
    assert.matches("1. probe-ctx [confirmed]", diag.stdout, 1, true)
    assert.matches("a Lua expectation", diag.stdout, 1, true)
    local rec = sb:relua({ "recover", "7", "--yes" }, env())
    assert.are.equal(0, rec.code, rec.stdout .. rec.stderr)
    assert.matches("fixed by ctx:run", rec.stdout, 1, true)
    assert.are.equal("7|verify|1|command exited with 1: cat status.txt; test \"$(cat status.txt)\" = ok|probe-app|" ..
      "[PROBE] ERROR: probe refused by the service\n", sb:read("ctx.txt"))
    -- the fix's output is recorded in the ticket's output folder, as a phase's commands are
    assert.matches("fixed by ctx:run", sb:read(".relua/releases/7/playbook.out"), 1, true)
    assert.are.equal("finished\n", sb:read("done.txt"))
  end)

  it("a fix that fails halts with exit 1; the ticket stays resumable and the playbook runs again", function()
    local rec = recover_with(sb, (PROBE_LUA:gsub('run = "echo ok > status.txt"',
      'run = "test -f fix.allowed && echo ok > status.txt"')))
    assert.are.equal(1, rec.code, rec.stdout .. rec.stderr)
    assert.matches("playbook probe-refused: fix failed: command exited with 1", rec.stderr, 1, true)
    assert.matches("relua recover 7 --playbook probe-refused", rec.stderr, 1, true)
    assert.are.same({ "verify:playbook-failed" }, sb:events("7", { ["playbook-failed"] = true }))
    assert.matches("stage=fix", table.concat(sb:log_lines("7"), "\n"), 1, true)
    assert.are.equal("failed", sb:state("7").phases[2].status)
    assert.are.equal("fix failed", sb:state("7").state["relua.playbooks"][1].result)
    sb:write("fix.allowed", "")
    local again = sb:relua({ "recover", "7", "--yes" }, env())
    assert.are.equal(0, again.code, again.stdout .. again.stderr)
    assert.matches("release 7 done", again.stdout, 1, true)
  end)

  it("--playbook picks one; an unknown id is a usage error", function()
    sb:write("playbooks/probe.lua", PROBE_LUA)
    failed_ticket(sb)
    local res = sb:relua({ "recover", "7", "--yes", "--playbook", "nope" }, env())
    assert.are.equal(2, res.code)
    assert.matches("no playbook nope", res.stderr, 1, true)
    -- Detection not confirmed (service.up missing): nothing is changed, exit 1.
    local nc = sb:relua({ "recover", "7", "--yes", "--playbook", "probe-refused" }, env())
    assert.are.equal(1, nc.code)
    assert.matches("did not confirm", nc.stderr, 1, true)
    assert.matches("probe refused", sb:read("status.txt"), 1, true)
  end)
end)
