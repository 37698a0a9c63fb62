-- recipes/pypi-npm.lua end to end, as shipped, against real servers on 127.0.0.1 (one set
-- for the whole file): git over smart HTTP (lighttpd), verdaccio, the PyPI test index and
-- the test forge. Each scenario gets its own project (tests/support/pypinpm.lua), built
-- for real (python3 -m build with flit, npm pack). Uploads are counted on the servers'
-- side: a re-run never publishes anything twice.
local W = require "support.pypinpm"
local reg = require "support.registries"
local gitfix = require "support.gitfix"
local npm = require "relua.registry.npm"
local json = require "relua.json"

local DOWN = "http://127.0.0.1:9/legacy/"  -- nothing listens there: the index is down

local ok, failed, status, phases = W.ok, W.failed, W.status, W.phases
local diagnosed, recovered = W.diagnosed, W.recovered

-- what a whole 1.0.1 release sends, once: 2 npm packages, a wheel and an sdist, 4 assets
local ONCE = { npm = 2, pypi = 2, forge = 4 }

local function delta(a, b)
  return { npm = b.npm - a.npm, pypi = b.pypi - a.pypi, forge = b.forge - a.forge }
end

describe("recipes/pypi-npm.lua", function()
  local S

  setup(function() S = W.servers() end)
  teardown(function() if S then S.stop() end end)

  it("a clean release: tag, npm before PyPI, the forge release, main back at X.Y.Z+dev; a re-run does nothing; a new ticket cuts the next version", function()
    local p = W.project(S)
    local c0 = p.counts()
    local r = p.release("42")
    ok(r)
    for _, secret in ipairs({ S.pypi.password, S.npm.token, S.forge.token }) do
      assert.is_nil((r.stdout .. r.stderr):find(secret, 1, true))
    end
    assert.are.same(ONCE, delta(c0, p.counts()))
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.same({ "1.0.1" }, p.npm_versions())
    assert.are.same({ "1.0.1" }, p.npm_versions(p.npm_name2))
    assert.are.equal(2, #p.pypi_files())
    assert.are.equal("1.0.1+dev", p.main_version())
    local st = status(p, "42")
    assert.are.equal("done", st.status)
    -- npm was published before PyPI
    local text = p.run({ "log", "42" }).stdout
    assert.is_truthy(text:find("phase=npm%-publish") < text:find("phase=pypi%-publish"))
    local again = p.release("42")
    ok(again)
    assert.matches("nothing to do", again.stdout, 1, true)
    assert.are.same(ONCE, delta(c0, p.counts()))
    -- --from=build on the finished ticket (the checkout at the pushed +dev commit): rebuilt
    -- byte-identical, nothing sent
    local rebuilt = p.run({ W.RECIPE, "42", "--from=build" })
    ok(rebuilt)
    assert.matches("release 42 done", rebuilt.stdout, 1, true)
    assert.matches("already says 1.0.1+dev: nothing to push", rebuilt.stdout, 1, true)
    assert.are.same(ONCE, delta(c0, p.counts()))
    -- a new ticket (CI ran on main's new head, the +dev commit) releases 1.0.2
    p.ci("success")
    ok(p.release("43"))
    assert.are.same({ "v1.0.0", "v1.0.1", "v1.0.2" }, p.remote_tags())
    assert.are.equal("1.0.1", p.state("42").VERSION)
    assert.are.equal("1.0.2", p.state("43").VERSION)
    assert.are.equal("1.0.2+dev", p.main_version())
    assert.are.same({ "1.0.1", "1.0.2" }, p.npm_versions(p.npm_name2))
    -- --from=build on the older ticket once 1.0.2 is out: 1.0.1 re-checked, nothing sent,
    -- and main is not moved back to 1.0.1+dev
    local c1 = p.counts()
    local older = p.run({ W.RECIPE, "42", "--from=build" })
    ok(older)
    assert.matches("origin/main already says 1.0.2+dev, past 1.0.1: nothing to push", older.stdout, 1, true)
    assert.are.equal("1.0.2+dev", p.main_version())
    assert.are.same({ npm = 0, pypi = 0, forge = 0 }, delta(c1, p.counts()))
  end)

  it("npm published and PyPI down: diagnose names pypi-npm-pypi-partial, recover publishes only PyPI", function()
    local p = W.project(S)
    local c0 = p.counts()
    local r = p.release("7", { PYPI_NPM_PYPI_URL = DOWN })
    failed(r)
    assert.matches("phase pypi-publish failed", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  pypi-npm-pypi-partial", r.stderr, 1, true)
    assert.matches("past the point of no return", r.stderr, 1, true)
    assert.are.same({ "1.0.1" }, p.npm_versions())
    assert.are.same({}, p.pypi_files())
    assert.are.same({ npm = 2, pypi = 0, forge = 0 }, delta(c0, p.counts()))
    diagnosed(p, "7", "pypi-npm-pypi-partial", { PYPI_NPM_PYPI_URL = DOWN })
    -- still down: the verify fails, nothing is resumed, the ticket stays failed
    local early = p.run({ "recover", "7", "--yes" }, { PYPI_NPM_PYPI_URL = DOWN })
    failed(early)
    assert.matches("the PyPI index (" .. DOWN .. ") does not answer", early.stdout .. early.stderr, 1, true)
    assert.are.equal("failed", phases(p, "7")["pypi-publish"])
    -- back up: recover resumes at pypi-publish; npm is not published again
    recovered(p, "7", "pypi-npm-pypi-partial")
    assert.are.same(ONCE, delta(c0, p.counts()))
    assert.are.equal(2, #p.pypi_files())
    assert.are.equal("1.0.1+dev", p.main_version())
  end)

  it("PyPI partly published (the wheel out, the sdist refused): --from=build rebuilds the same bytes, uploads only the sdist", function()
    local p = W.project(S)
    S.pypi.fail({ status = 400, count = 1, prefix = "/legacy/", skip = 1 })
    local c0 = p.counts()
    local r = p.release("8")
    failed(r)
    assert.matches("phase pypi-publish failed", r.stderr, 1, true)
    assert.are.same({ npm = 2, pypi = 2, forge = 0 }, delta(c0, p.counts()))
    assert.are.equal(1, #p.pypi_files())
    diagnosed(p, "8", "pypi-npm-pypi-partial")
    local again = p.run({ W.RECIPE, "8", "--from=build" })
    ok(again)
    assert.matches("phase build: done", again.stdout, 1, true)
    -- one more upload: the sdist; the wheel was recorded published and is not sent again
    assert.are.same({ npm = 2, pypi = 3, forge = 4 }, delta(c0, p.counts()))
    assert.are.equal(2, #p.pypi_files())
  end)
  it("gate: CI failing; diagnose names pypi-npm-ci-not-green; the fix pushed to main goes green, recover releases it", function()
    local p = W.project(S)
    p.ci("failure")
    local c0 = p.counts()
    local r = p.release("10")
    failed(r)
    assert.matches("phase gate failed", r.stderr, 1, true)
    assert.matches("CI is not green", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  pypi-npm-ci-not-green", r.stderr, 1, true)
    assert.are.same({ "v1.0.0" }, p.remote_tags())  -- nothing was done
    diagnosed(p, "10", "pypi-npm-ci-not-green")
    local early = p.run({ "recover", "10", "--yes" })
    failed(early)
    assert.matches("CI is failing for", early.stdout .. early.stderr, 1, true)
    local fix = p.commit("fix: make CI green", "src/" .. p.py_module .. "/ci.py", "GREEN = True\n")
    p.ci("success", fix)
    recovered(p, "10", "pypi-npm-ci-not-green")
    assert.are.equal(fix, p.state("10").BASE_SHA)
    assert.are.same(ONCE, delta(c0, p.counts()))
    assert.are.equal("1.0.1+dev", p.main_version())
  end)

  it("prepare: the tag push refused; once allowed, a re-run cuts the same version and completes", function()
    local p = W.project(S)
    p.protect("refs/tags/*")
    local c0 = p.counts()
    local r = p.release("11")
    failed(r)
    assert.matches("phase prepare failed", r.stderr, 1, true)
    assert.matches("protected: refs/tags/v1.0.1 may not be pushed", r.stderr, 1, true)
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    -- the tag never left this checkout: a fresh dispatch (a new ticket) computes the same
    -- version, as the seed says of a prepare that failed before tagging
    local fresh = p.run({ W.RECIPE, "11-new", "--dry-run" })
    ok(fresh)
    assert.matches("version 1.0.1 (bump patch)", fresh.stdout, 1, true)
    p.unprotect()
    ok(p.release("11"))
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.equal(p.state("11").RELEASE_SHA, p.tag_commit("v1.0.1"))
    assert.are.same(ONCE, delta(c0, p.counts()))
  end)

  it("build broke: nothing published; diagnose names pypi-npm-build-broke; recover verifies the build and resumes", function()
    local p = W.project(S)
    local broken = { PYPI_NPM_BUILD_NPM = "npm-is-not-installed pack" }
    local c0 = p.counts()
    local r = p.release("12", broken)
    failed(r)
    assert.matches("phase build failed", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  pypi-npm-build-broke", r.stderr, 1, true)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())  -- the tag is out, nothing else
    -- a fresh dispatch (a new ticket) would cut a NEW version, never retry the pushed one
    local fresh = p.run({ W.RECIPE, "12-new", "--dry-run" })
    ok(fresh)
    assert.matches("version 1.0.2 (bump patch)", fresh.stdout, 1, true)
    diagnosed(p, "12", "pypi-npm-build-broke", broken)
    local early = p.run({ "recover", "12", "--yes" }, broken)
    failed(early)
    assert.matches("npm-is-not-installed pack exited 127", early.stdout .. early.stderr, 1, true)
    assert.are.same({ npm = 0, pypi = 0, forge = 0 }, delta(c0, p.counts()))
    recovered(p, "12", "pypi-npm-build-broke")
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())  -- the tag pushed by the failed run, reused
    assert.are.same(ONCE, delta(c0, p.counts()))
  end)

  it("build broke after the ticket published (--from=build): the hint, status and diagnose all rule out pypi-npm-build-broke", function()
    local p = W.project(S)
    ok(p.release("23"))
    local broken = { PYPI_NPM_BUILD_NPM = "npm-is-not-installed pack" }
    local r = p.run({ W.RECIPE, "23", "--from=build" }, broken)
    failed(r)
    assert.matches("phase build failed", r.stderr, 1, true)
    -- the symptom (phase build) matches, but its detection (nothing published) does not:
    -- the hint says so instead of suggesting "nothing was published"
    assert.is_nil(r.stderr:find("Matching playbooks:", 1, true), r.stderr)
    assert.is_nil(r.stderr:find("nothing was published", 1, true), r.stderr)
    assert.matches("No playbook matches this failure: the detection of pypi-npm-build-broke ruled it out (relua diagnose 23 shows why)",
      r.stderr, 1, true)
    local st = p.run({ "status", "23" })
    assert.is_nil(st.stdout:find("Matching playbooks:", 1, true), st.stdout)
    assert.matches("the detection of pypi-npm-build-broke ruled it out", st.stdout, 1, true)
    local diag = p.run({ "diagnose", "23" }, broken)
    ok(diag)
    assert.matches("pypi-npm-build-broke [not confirmed: its detection did not match]", diag.stdout, 1, true)
    assert.matches("this ticket already published: see relua status", diag.stdout, 1, true)
    assert.matches("no playbook's detection confirmed the failure", diag.stdout, 1, true)
  end)

  it("revert before the point of no return deletes the tag; a re-run cuts the same version again", function()
    local p = W.project(S)
    local r = p.release("13", { PYPI_NPM_BUILD_PYTHON = "exit 3" })
    failed(r)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    local base = p.state("13").BASE_SHA
    local rv = p.run({ "revert", "13" })
    ok(rv)
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.equal(base, gitfix.git(p.dir, "rev-parse", "HEAD"))
    ok(p.release("13"))
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.equal("1.0.1+dev", p.main_version())
  end)

  it("npm partly published: diagnose names pypi-npm-npm-partial, revert is refused, recover publishes only the missing package", function()
    local p = W.project(S)
    S.npm.fail({ method = "PUT", prefix = "/" .. p.npm_name2, status = 400 })
    local c0 = p.counts()
    local r = p.release("14")
    failed(r)
    assert.matches("phase npm-publish failed", r.stderr, 1, true)
    assert.are.same({ "1.0.1" }, p.npm_versions())
    assert.are.same({}, p.npm_versions(p.npm_name2))
    assert.are.equal(1, S.npm.publishes(p.npm_name))
    local rv = p.run({ "revert", "14" })
    assert.are.equal(3, rv.code, rv.stdout .. rv.stderr)
    assert.matches("point of no return", rv.stdout .. rv.stderr, 1, true)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    diagnosed(p, "14", "pypi-npm-npm-partial")
    recovered(p, "14", "pypi-npm-npm-partial")
    assert.are.equal(1, S.npm.publishes(p.npm_name))   -- never sent again
    assert.are.equal(2, S.npm.publishes(p.npm_name2))  -- the refused one, then the one that landed
    assert.are.same({ "1.0.1" }, p.npm_versions(p.npm_name2))
    assert.are.same({ npm = 3, pypi = 2, forge = 4 }, delta(c0, p.counts()))
  end)

  it("published but no forge release (the forge refused): diagnose names pypi-npm-no-forge-release, recover makes it", function()
    local p = W.project(S)
    S.forge.fail({ prefix = "/repos/" .. p.repo .. "/releases", method = "POST", status = 403 })
    local c0 = p.counts()
    local r = p.release("15")
    failed(r)
    assert.matches("phase forge-release failed", r.stderr, 1, true)
    assert.are.same({ npm = 2, pypi = 2, forge = 0 }, delta(c0, p.counts()))
    diagnosed(p, "15", "pypi-npm-no-forge-release")
    recovered(p, "15", "pypi-npm-no-forge-release")
    assert.are.same(ONCE, delta(c0, p.counts()))
    assert.are.equal("1.0.1+dev", p.main_version())
  end)

  it("finalize refused (branch protected): released; follow-up failed; pypi-npm-finalize resumes it", function()
    local p = W.project(S)
    p.protect("refs/heads/main")
    local c0 = p.counts()
    local r = p.release("16")
    failed(r)
    assert.matches("released; follow-up failed in phase finalize", r.stderr, 1, true)
    assert.are.equal("1.0.0+dev", p.main_version())
    diagnosed(p, "16", "pypi-npm-finalize")
    p.unprotect()
    recovered(p, "16", "pypi-npm-finalize")
    assert.are.equal("1.0.1+dev", p.main_version())
    assert.are.same(ONCE, delta(c0, p.counts()))
  end)

  it("the version already burned with other content: 'bump the version', registries unchanged; pypi-npm-bump releases the next", function()
    local p = W.project(S)
    -- someone published 1.0.1 of the js package by hand, from other content
    local other = reg.npm_pack(gitfix.tmpdir() .. "/other", { { manifest = { name = p.npm_name, version = "1.0.1" },
      content = "module.exports = 'published by hand';\n" } })[1]
    require("relua.log").level("error")
    assert(npm.publish(other, { registry = S.npm.url, token = S.npm.token, timeout = 20 }))
    require("relua.log").level("info")
    local c0 = p.counts()
    local r = p.release("17")
    failed(r)
    assert.matches("phase npm-publish failed", r.stderr, 1, true)
    assert.matches("bump the version", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  pypi-npm-bump", r.stderr, 1, true)
    assert.are.same({ npm = 0, pypi = 0, forge = 0 }, delta(c0, p.counts()))
    assert.are.same({}, p.npm_versions(p.npm_name2))
    assert.are.same({}, p.pypi_files())
    diagnosed(p, "17", "pypi-npm-bump")
    recovered(p, "17", "pypi-npm-bump")
    assert.are.equal("1.0.2", p.state("17").VERSION)
    assert.are.equal("1.0.1", p.state("17").BURNED[1].version)
    assert.are.same({ "1.0.1", "1.0.2" }, p.npm_versions())
    assert.are.same({ "1.0.2" }, p.npm_versions(p.npm_name2))
    assert.are.equal(2, #p.pypi_files())
    assert.are.equal("1.0.2+dev", p.main_version())
    assert.are.same(ONCE, delta(c0, p.counts()))
  end)

  it("the version already burned on PyPI (a wheel of other content): stopped before npm, 'bump the version', registries unchanged", function()
    local p = W.project(S)
    -- someone built 1.0.1 of the Python package by hand, from other content, and uploaded it
    local other = gitfix.tmpdir() .. "/other-py"
    gitfix.git("/", "clone", "-q", p.authed, other)
    assert(require("relua.versionfile").set(other .. "/pyproject.toml", "1.0.1"))
    assert(require("relua.fs").write(other .. "/src/" .. p.py_module .. "/__init__.py", '"""By hand."""\nVALUE = 2\n'))
    local built = require("relua.proc").run({ W.PYTHON, "-m", "build", "--no-isolation", "--wheel", "--outdir",
      other .. "/dist", "." }, { cwd = other, timeout = 120 })
    assert(built and built.code == 0, built and built.stderr)
    local wheel = require("relua.fs").glob(other .. "/dist/*.whl")[1]
    require("relua.log").level("error")
    assert(require("relua.registry.pypi").publish(wheel, { url = S.pypi.legacy, user = S.pypi.user,
      password = S.pypi.password, timeout = 20 }))
    require("relua.log").level("info")
    local held = p.pypi_files()
    assert.are.equal(1, #held)
    local c0 = p.counts()
    local r = p.release("19")
    failed(r)
    assert.matches("phase npm-publish failed", r.stderr, 1, true)
    assert.matches("target pypi: ", r.stderr, 1, true)
    assert.matches("nothing was sent to any target", r.stderr, 1, true)
    assert.matches("bump the version", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  pypi-npm-bump", r.stderr, 1, true)
    assert.are.same({ npm = 0, pypi = 0, forge = 0 }, delta(c0, p.counts()))
    assert.are.same({}, p.npm_versions())
    assert.are.same({}, p.npm_versions(p.npm_name2))
    assert.are.same(held, p.pypi_files())
    diagnosed(p, "19", "pypi-npm-bump")
    recovered(p, "19", "pypi-npm-bump")
    assert.are.equal("1.0.2", p.state("19").VERSION)
    assert.are.same({ "1.0.2" }, p.npm_versions())
    assert.are.equal(3, #p.pypi_files())
    assert.are.equal("1.0.2+dev", p.main_version())
    assert.are.same(ONCE, delta(c0, p.counts()))
  end)

  it("a tag pushed by a run that died: the re-run reuses it; another runner retrying the version skips every artifact", function()
    local p = W.project(S)
    local c0 = p.counts()
    -- killed right after the tag was pushed, before the step was recorded
    local r = p.release("18", { RELUA_TEST_CRASH_AT = "step-before-record:2" })
    assert.are.equal(137, r.code, r.stdout .. r.stderr)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    ok(p.release("18"))
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.equal(p.state("18").RELEASE_SHA, p.tag_commit("v1.0.1"))
    assert.are.same(ONCE, delta(c0, p.counts()))
    -- another runner, without this ledger, retries 1.0.1: the tag is reused, nothing is sent
    local again = p.release("18-retry", { RELUA_HOME = p.home .. "-other", PYPI_NPM_VERSION = "1.0.1" })
    ok(again)
    assert.matches("the tag v1.0.1 was already pushed (by an earlier run)", again.stdout, 1, true)
    assert.is_nil(again.stdout:find("%s published%s"))
    local _, skipped = again.stdout:gsub("skipped_existing", "")
    assert.are.equal(8, skipped)  -- 2 npm, 2 PyPI, 4 forge assets
    assert.matches("already says 1.0.1+dev: nothing to push", again.stdout, 1, true)
    assert.are.same(ONCE, delta(c0, p.counts()))
  end)

  it("PYPI_NPM_BUMP=auto: a feat since the last tag releases the next minor, its notes on the forge release", function()
    local p = W.project(S)
    p.commit("feat(widgets): a new widget", "widgets/new.js", "module.exports = 'new';\n")
    p.ci("success")
    ok(p.release("21", { PYPI_NPM_BUMP = "auto" }))
    assert.are.equal("1.1.0", p.state("21").VERSION)
    assert.are.same({ "v1.0.0", "v1.1.0" }, p.remote_tags())
    local resp = assert(require("relua.http").get(S.forge.api .. "/repos/" .. p.repo .. "/releases/tags/v1.1.0",
      { headers = { Authorization = "Bearer " .. S.forge.token }, retry = false, progress = false }))
    assert.are.equal(200, resp.status, resp.body)
    local body = json.decode(resp.body).body
    assert.matches("### Features\n\n* **widgets:** a new widget", body, 1, true)
    assert.matches("### Bug Fixes\n\n* a bug fixed after 1.0.0", body, 1, true)
    -- nothing calls for a release since (chores only): a new ticket says so and does nothing
    p.ci("success")
    local none = p.release("22", { PYPI_NPM_BUMP = "auto" })
    failed(none)
    assert.matches("no fix, feat or breaking commit since v1.1.0: nothing to release", none.stderr, 1, true)
    assert.are.same({ "v1.0.0", "v1.1.0" }, p.remote_tags())
  end)

  it("bad settings are refused before any phase runs (exit 2), each named with what to do; fixed, the ticket releases", function()
    local p = W.project(S)
    local bad = { PYPI_NPM_BUMP = "bogus", PYPI_NPM_VERSION = "one", PYPI_NPM_NPM_DIRS = "js nope",
                  PYPI_NPM_FORGE_REPO = false, NPM_TOKEN = false }
    local r = p.release("20", bad)
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    local all = r.stdout .. r.stderr
    assert.matches("pre-flight failed", all, 1, true)
    assert.matches("PYPI_NPM_BUMP 'bogus' is not patch, minor, major or auto", all, 1, true)
    assert.matches("PYPI_NPM_VERSION 'one' is not a SemVer version", all, 1, true)
    assert.matches("nope/package.json", all, 1, true)
    assert.matches("PYPI_NPM_FORGE_REPO (or GITHUB_REPOSITORY) is not set", all, 1, true)
    assert.matches("NPM_TOKEN is not set", all, 1, true)
    assert.is_nil(all:find("phase gate: running", 1, true))
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    local st = p.run({ "status", "20", "--json" })
    if st.code == 0 then
      for _, ph in ipairs(json.decode(st.stdout).phases) do assert.are.equal("pending", ph.status, ph.name) end
    end
    ok(p.release("20"))
    assert.are.equal("1.0.1+dev", p.main_version())
  end)

  it("--dry-run says what would happen and changes nothing", function()
    local p = W.project(S, { name = "relua-pn-dry" .. os.time() })
    local c0 = p.counts()
    local r = p.run({ W.RECIPE, "60", "--dry-run" })
    ok(r)
    assert.is_nil(io.open(p.home .. "/releases/60.json"))  -- no ledger either
    assert.matches("would commit 1.0.1", r.stdout, 1, true)
    assert.matches("would publish to npm", r.stdout, 1, true)
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.same({ npm = 0, pypi = 0, forge = 0 }, delta(c0, p.counts()))
    assert.are.equal("1.0.0+dev", p.main_version())
  end)
end)
