-- recipes/pypi-npm.lua end to end, as shipped, against real servers on 127.0.0.1 (one set
-- for the whole file): git over smart HTTP (lighttpd), verdaccio, the PyPI test index and
-- the test forge. Each scenario gets its own project (tests/support/pypinpm.lua), built
-- for real (python3 -m build with flit, npm pack). Uploads are counted on the servers'
-- side: a re-run never publishes anything twice.
local W = require "support.pypinpm"
local json = require "relua.json"

local DOWN = "http://127.0.0.1:9/legacy/"  -- nothing listens there: the index is down

local function ok(r) assert.are.equal(0, r.code, r.stdout .. r.stderr) end
local function failed(r) assert.are.equal(1, r.code, r.stdout .. r.stderr) end

local function status(p, ticket)
  local r = p.run({ "status", ticket, "--json" })
  ok(r)
  return json.decode(r.stdout)
end

local function phases(p, ticket)
  local t = {}
  for _, ph in ipairs(status(p, ticket).phases) do t[ph.name] = ph.status end
  return t
end

local function delta(a, b)
  return { npm = b.npm - a.npm, pypi = b.pypi - a.pypi, forge = b.forge - a.forge }
end

describe("recipes/pypi-npm.lua", function()
  local S

  setup(function() S = W.servers() end)
  teardown(function() if S then S.stop() end end)

  it("a clean release: tag, npm before PyPI, the forge release, main back at X.Y.Z+dev; a re-run does nothing", function()
    local p = W.project(S)
    local c0 = p.counts()
    local r = p.release("42")
    ok(r)
    assert.are.same({ npm = 2, pypi = 2, forge = 4 }, delta(c0, p.counts()))
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
    assert.are.same({ npm = 2, pypi = 2, forge = 4 }, delta(c0, p.counts()))
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
    local diag = p.run({ "diagnose", "7" }, { PYPI_NPM_PYPI_URL = DOWN })
    ok(diag)
    assert.matches("1. pypi-npm-pypi-partial [confirmed]", diag.stdout, 1, true)
    -- still down: the verify fails, nothing is resumed, the ticket stays failed
    local early = p.run({ "recover", "7", "--yes" }, { PYPI_NPM_PYPI_URL = DOWN })
    failed(early)
    assert.matches("the PyPI index (" .. DOWN .. ") does not answer", early.stdout .. early.stderr, 1, true)
    assert.are.equal("failed", phases(p, "7")["pypi-publish"])
    -- back up: recover resumes at pypi-publish; npm is not published again
    local rec = p.run({ "recover", "7", "--yes" })
    ok(rec)
    assert.matches("playbook pypi-npm-pypi-partial: verified", rec.stdout, 1, true)
    assert.matches("release 7 done", rec.stdout, 1, true)
    assert.are.same({ npm = 2, pypi = 2, forge = 4 }, delta(c0, p.counts()))
    assert.are.equal(2, #p.pypi_files())
    assert.are.equal("1.0.1+dev", p.main_version())
  end)

  it("PyPI partly published (the wheel out, the sdist refused): the re-run uploads only the sdist", function()
    local p = W.project(S)
    S.pypi.fail({ status = 400, count = 1, prefix = "/legacy/", skip = 1 })
    local c0 = p.counts()
    local r = p.release("8")
    failed(r)
    assert.matches("phase pypi-publish failed", r.stderr, 1, true)
    assert.are.same({ npm = 2, pypi = 2, forge = 0 }, delta(c0, p.counts()))
    assert.are.equal(1, #p.pypi_files())
    local diag = p.run({ "diagnose", "8" })
    assert.matches("1. pypi-npm-pypi-partial [confirmed]", diag.stdout, 1, true)
    local again = p.release("8")
    ok(again)
    -- one more upload: the sdist; the wheel was recorded published and is not sent again
    assert.are.same({ npm = 2, pypi = 3, forge = 4 }, delta(c0, p.counts()))
    assert.are.equal(2, #p.pypi_files())
  end)
end)
