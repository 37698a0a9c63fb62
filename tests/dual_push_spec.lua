-- recipes/dual-push.lua end to end, as shipped: a wheel and an sdist published to a primary
-- and a fallback PyPI test index (two real servers on 127.0.0.1), run by the relua binary.
-- Uploads are counted on the servers: nothing is ever sent twice.
local reg = require "support.registries"
local S = require "support.release"
local h = require "support.h"
local fs = require "relua.fs"
local json = require "relua.json"

local DOWN = "http://127.0.0.1:9/legacy/"   -- nothing listens there: connection refused
local RECIPE = h.root .. "/recipes/dual-push.lua"

describe("recipes/dual-push.lua", function()
  local indexes, primary, fallback, dir

  setup(function()
    indexes = reg.pypi_pair("relua-dual-push-")
    primary, fallback, dir = indexes.primary, indexes.fallback, indexes.dir
  end)

  teardown(function()
    if indexes then indexes.stop() end
    S.cleanup()
  end)

  local n = 0
  local project, files
  -- A sandbox whose dist/ holds a new project's wheel and sdist of version (a new project
  -- per test, so the indexes' files are told apart).
  local function world(version, opts)
    n = n + 1
    project = "Dual" .. n
    local s = S.sandbox()
    local dist, pair = fs.join(s.dir, "dist"), { project .. ".Pkg", version or "1.0" }
    files = {}
    for _, sdist in ipairs({ false, true }) do  -- a wheel, then an sdist
      for _, p in ipairs(reg.build_dists(dist, pair, { sdist = sdist or nil, salt = opts and opts.salt })) do
        files[#files + 1] = fs.basename(p)
      end
    end
    table.sort(files)
    return s
  end

  local function stored(server) return server.files_of(project .. "_") end

  local function env(extra)
    local e = { DUAL_PUSH_PRIMARY_URL = primary.legacy, DUAL_PUSH_FALLBACK_URL = fallback.legacy,
                MOLECULE_PYPI_GITEA_PUBLISHER_USER = primary.user,
                MOLECULE_PYPI_GITEA_PUBLISHER_TOKEN = primary.password, PYPI_TOKEN = fallback.password,
                DUAL_PUSH_FALLBACK_USER = fallback.user,
                GITHUB_STEP_SUMMARY = false, GITHUB_ACTIONS = false }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  it("publishes the wheel and the sdist to both indexes, ends with the summary table; a re-run sends nothing", function()
    local s = world()
    local summary = fs.join(s.dir, "summary.md")
    local p0, f0 = primary.uploads(), fallback.uploads()
    -- the fallback's token read from another variable (DUAL_PUSH_FALLBACK_CRED_FROM)
    local r = s:relua({ RECIPE, "1.0" }, env({ GITHUB_STEP_SUMMARY = summary,
      DUAL_PUSH_FALLBACK_CRED_FROM = "FALLBACK_TOKEN", FALLBACK_TOKEN = fallback.password }))
    assert.are.equal(2, #files)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(primary))
    assert.are.same(files, stored(fallback))
    assert.are.equal(2, primary.uploads() - p0)
    assert.are.equal(2, fallback.uploads() - f0)
    for _, f in ipairs(files) do
      assert.matches("primary%s+primary%s+" .. f:gsub("%p", "%%%0") .. "%s+published", r.stdout)
      assert.matches("fallback%s+fallback%s+" .. f:gsub("%p", "%%%0") .. "%s+published", r.stdout)
    end
    assert.matches("| primary | primary | " .. files[1] .. " | published |", h.slurp(summary), 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(primary.password, 1, true))
    local st = json.decode(s:relua({ "status", "1.0", "--json" }).stdout)
    assert.are.equal("done", st.status)
    -- again: everything is recorded done, nothing is sent
    r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_FALLBACK_CRED_FROM = "FALLBACK_TOKEN", FALLBACK_TOKEN = fallback.password }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.equal(2, primary.uploads() - p0)
    assert.are.equal(2, fallback.uploads() - f0)
  end)

  it("the fallback down: the primary gets the release, the ticket is done with warnings", function()
    local s = world()
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_FALLBACK_URL = DOWN }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("done with warnings", r.stdout, 1, true)
    assert.matches("fallback%s+fallback%s+%S+%s+failed", r.stdout)
    assert.are.same(files, stored(primary))
    local st = json.decode(s:relua({ "status", "1.0", "--json" }).stdout)
    assert.are.equal("done with warnings", st.status)
    assert.are.equal("fallback", st.warnings[1].target)
  end)

  it("the primary down: pre-flight refuses before anything is sent; once it is back one run sends each file once", function()
    local s = world()
    local f0 = fallback.uploads()
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_PRIMARY_URL = DOWN }))
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("pre-flight failed", r.stdout .. r.stderr, 1, true)
    assert.are.equal(f0, fallback.uploads())
    assert.are.same({}, stored(fallback))
    r = s:relua({ RECIPE, "1.0" }, env())
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(primary))
    assert.are.same(files, stored(fallback))
    assert.are.equal(2, fallback.uploads() - f0)
  end)

  it("secrets pre-flight: a missing primary secret and a reserved GITEA_ name are refused, nothing runs", function()
    local s = world()
    local p0, f0 = primary.uploads(), fallback.uploads()
    local r = s:relua({ RECIPE, "1.0" }, env({ MOLECULE_PYPI_GITEA_PUBLISHER_TOKEN = false }))
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("primary (primary): not set: MOLECULE_PYPI_GITEA_PUBLISHER_TOKEN", r.stdout .. r.stderr, 1, true)
    r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_PRIMARY_CRED_FROM = "GITEA_PYPI_PUBLISHER_TOKEN",
                                         GITEA_PYPI_PUBLISHER_TOKEN = primary.password }))
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("GITEA_PYPI_PUBLISHER_TOKEN", r.stdout .. r.stderr, 1, true)
    assert.matches("GITEA_", r.stdout .. r.stderr, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(primary.password, 1, true))
    assert.are.equal(p0, primary.uploads())
    assert.are.equal(f0, fallback.uploads())
    for _, ph in ipairs(json.decode(s:relua({ "status", "1.0", "--json" }).stdout).phases) do
      assert.are.equal("pending", ph.status)  -- nothing ran
    end
  end)

  it("without a primary index URL: pre-flight says which variable to set", function()
    local s = world()
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_PRIMARY_URL = false }))
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("[FAIL] primary index: DUAL_PUSH_PRIMARY_URL is not set", r.stdout .. r.stderr, 1, true)
    assert.are.equal(0, h.relua({ "check", RECIPE }).code)  -- the recipe itself is valid
  end)

  it("builds with DUAL_PUSH_BUILD in a build phase first", function()
    local s = world()
    assert(os.rename(fs.join(s.dir, "dist"), fs.join(s.dir, "built")))
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_BUILD = "cp -R built dist" }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(primary))
    assert.are.same({ "build", "check", "publish" }, (function()
      local names = {}
      for _, ph in ipairs(json.decode(s:relua({ "status", "1.0", "--json" }).stdout).phases) do names[#names + 1] = ph.name end
      return names
    end)())
  end)

  it("no fallback token: the fallback is skipped_no_token and the ticket done with warnings", function()
    local s = world()
    local r = s:relua({ RECIPE, "1.0" }, env({ PYPI_TOKEN = false }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("fallback%s+fallback%s+%S+%s+skipped_no_token", r.stdout)
    assert.matches("done with warnings", r.stdout, 1, true)
    assert.are.same({}, stored(fallback))
  end)

  it("files of another version, or a version burned with other bytes: stopped before any upload", function()
    local s = world("1.1")
    local p0, f0 = primary.uploads(), fallback.uploads()
    local r = s:relua({ RECIPE, "1.2" }, env())
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("is version 1.1, not 1.2", r.stderr, 1, true)
    assert.are.equal(p0, primary.uploads())
    assert.are.equal(f0, fallback.uploads())
    -- the same version with other bytes already on the fallback: immutable, nothing sent
    local s2 = world("2.0")
    local other = reg.build_dists(fs.join(dir, "other" .. n), { project .. ".Pkg", "2.0" }, { salt = "other" })[1]
    local pypi = require "relua.registry.pypi"
    require("relua.log").level("error")
    pypi.publish(other, { url = fallback.legacy, user = fallback.user, password = fallback.password, timeout = 10 })
    require("relua.log").level("info")
    p0, f0 = primary.uploads(), fallback.uploads()
    r = s2:relua({ RECIPE, "2.0" }, env())
    assert.are.equal(2, r.code)  -- pre-flight: the version is burned on the fallback
    assert.matches("is already on " .. fallback.index, r.stdout .. r.stderr, 1, true)
    assert.matches("but the local file has sha256", r.stdout .. r.stderr, 1, true)
    assert.are.equal(p0, primary.uploads())
    assert.are.equal(f0, fallback.uploads())
  end)

  local function statuses(s)
    local t = {}
    for _, ph in ipairs(json.decode(s:relua({ "status", "1.0", "--json" }).stdout).phases) do t[ph.name] = ph.status end
    return t
  end

  it("a failure in build, fixed: the re-run builds, checks and sends each file once", function()
    local s = world()
    assert(os.rename(fs.join(s.dir, "dist"), fs.join(s.dir, "built")))
    local p0, f0 = primary.uploads(), fallback.uploads()
    local build = "test -f fixed && cp -R built dist"
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_BUILD = build }))
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("phase build failed", r.stderr, 1, true)
    assert.are.equal(p0, primary.uploads())
    s:write("fixed", "")
    r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_BUILD = build }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(primary))
    assert.are.same(files, stored(fallback))
    assert.are.equal(2, primary.uploads() - p0)
    assert.are.equal(2, fallback.uploads() - f0)
  end)

  it("a failure in check (files of another version), fixed: the re-run sends each file once", function()
    local s = world("0.9")
    local p0 = primary.uploads()
    local r = s:relua({ RECIPE, "1.0" }, env())
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("phase check failed", r.stderr, 1, true)
    assert.are.equal(p0, primary.uploads())
    -- the right files built
    fs.remove(fs.join(s.dir, "dist"), { recursive = true })
    files = {}
    for _, sdist in ipairs({ false, true }) do
      for _, p in ipairs(reg.build_dists(fs.join(s.dir, "dist"), { project .. ".Pkg", "1.0" }, { sdist = sdist or nil })) do
        files[#files + 1] = fs.basename(p)
      end
    end
    table.sort(files)
    r = s:relua({ RECIPE, "1.0" }, env())
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(primary))
    assert.are.equal(2, primary.uploads() - p0)
  end)

  it("the primary fails during publish: the release fails; --from=publish sends only what is missing", function()
    local s = world()
    local p0, f0 = primary.uploads(), fallback.uploads()
    -- the primary takes the first file, then refuses the second upload
    primary.fail({ status = 400, count = 1, prefix = "/legacy/", skip = 1 })
    local r = s:relua({ RECIPE, "1.0" }, env())
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("phase publish failed", r.stderr, 1, true)
    assert.are.equal(1, #stored(primary))
    assert.are.equal("failed", statuses(s).publish)
    -- past the point of no return: nothing to roll back
    local rv = s:relua({ "revert", "1.0" }, env())
    assert.are.equal(3, rv.code, rv.stdout .. rv.stderr)
    assert.matches("past the point of no return", rv.stdout .. rv.stderr, 1, true)
    assert.are.equal(1, #stored(primary))
    r = s:relua({ RECIPE, "1.0", "--from=publish" }, env())
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(primary))
    assert.are.same(files, stored(fallback))
    -- each file stored once: the primary saw the two uploads and the refused one, no more
    assert.are.equal(3, primary.uploads() - p0)
    assert.are.equal(2, fallback.uploads() - f0)
  end)

  it("the fallback back after a release done with warnings: --from=publish fills the fallback only", function()
    local s = world()
    local p0, f0 = primary.uploads(), fallback.uploads()
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_FALLBACK_URL = DOWN }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("done with warnings", r.stdout, 1, true)
    r = s:relua({ RECIPE, "1.0", "--from=publish" }, env())
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same(files, stored(fallback))
    assert.are.equal(2, primary.uploads() - p0)
    assert.are.equal(2, fallback.uploads() - f0)
    assert.are.equal("done", json.decode(s:relua({ "status", "1.0", "--json" }).stdout).status)
  end)

  it("revert: before the publish nothing is undone (no phase has a revert); after it, refused (exit 3)", function()
    local s = world()
    s:write("dist/junk.txt", "")
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_BUILD = "false" }))
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    r = s:relua({ "revert", "1.0" }, env({ DUAL_PUSH_BUILD = "false" }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("build: has no revert", r.stdout, 1, true)
    local s2 = world()
    r = s2:relua({ RECIPE, "1.0" }, env())
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    local p0 = primary.uploads()
    r = s2:relua({ "revert", "1.0" }, env())
    assert.are.equal(3, r.code, r.stdout .. r.stderr)
    assert.matches("phase publish is past the point of no return", r.stdout .. r.stderr, 1, true)
    assert.are.same(files, stored(primary))
    assert.are.equal(p0, primary.uploads())
  end)

  it("secrets pre-flight: a token in a GITHUB_ variable is refused too", function()
    local s = world()
    local r = s:relua({ RECIPE, "1.0" }, env({ DUAL_PUSH_PRIMARY_CRED_FROM = "GITHUB_PYPI_TOKEN",
                                               GITHUB_PYPI_TOKEN = primary.password }))
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("GITHUB_PYPI_TOKEN", r.stdout .. r.stderr, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(primary.password, 1, true))
    assert.are.same({}, stored(primary))
  end)

  it("a garbage fallback token (the runbook's test plan): the primary publishes, the ticket is done with warnings", function()
    local s = world()
    local p0, f0 = primary.uploads(), fallback.uploads()
    local r = s:relua({ RECIPE, "1.0" }, env({ PYPI_TOKEN = "garbage" }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("done with warnings", r.stdout, 1, true)
    assert.matches("fallback%s+fallback%s+%S+%s+failed", r.stdout)
    assert.are.same(files, stored(primary))
    assert.are.same({}, stored(fallback))
    assert.are.equal(2, primary.uploads() - p0)
    assert.are.equal(2, fallback.uploads() - f0)  -- each file tried once: a 403 is not retried
    assert.matches("the credentials in $PYPI_TOKEN were refused", r.stdout, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find("garbage", 1, true))
  end)
end)
