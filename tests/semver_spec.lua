-- relua.semver (SemVer 2.0.0) and relua.pep440 (PEP 440). The PEP 440 order is checked
-- against Python's own `packaging` (python3-packaging, what pip uses) on the same list.
local semver = require "relua.semver"
local pep440 = require "relua.pep440"
local proc = require "relua.proc"
local json = require "relua.json"

describe("relua.semver", function()
  it("parses versions, pre-releases and build metadata", function()
    local v = assert(semver.parse("1.20.3-rc.1.beta-2+build.05.x"))
    assert.are.equal(1, v.major)
    assert.are.equal(20, v.minor)
    assert.are.equal(3, v.patch)
    assert.are.same({ "rc", 1, "beta-2" }, v.prerelease)
    assert.are.same({ "build", "05", "x" }, v.build)  -- build identifiers may have leading zeros
    assert.are.equal("1.20.3-rc.1.beta-2+build.05.x", tostring(v))
    assert.is_true(v:is_prerelease())
    assert.are.equal("1.2.3", tostring(semver.parse("v1.2.3", { prefix = "v" })))
  end)

  it("refuses what SemVer does not allow, naming the version", function()
    for _, bad in ipairs({ "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "1.2.3-01", "1.2.3-",
                           "1.2.3-rc..1", "1.2.3+", "1.2.3+a..b", "1.2.3-r c", "v1.2.3", "", "1.2.x",
                           "99999999999999999999.0.0" }) do
      local v, msg, code = semver.parse(bad)
      assert.is_nil(v, bad)
      assert.are.equal("bad_version", code)
      assert.truthy(msg:find("'" .. bad .. "'", 1, true), msg)
      assert.is_false(semver.valid(bad))
    end
    assert.has_error(function() semver.compare("1.2", "1.2.3") end,
      "semver: '1.2' is not a version MAJOR.MINOR.PATCH (numbers without leading zeros, e.g. 1.2.3)")
  end)

  it("orders by precedence as the specification's example, build metadata ignored", function()
    local spec = { "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                   "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0" }
    local shuffled = { spec[5], spec[12], spec[1], spec[8], spec[3], spec[11], spec[6], spec[2],
                       spec[10], spec[4], spec[9], spec[7] }
    assert.are.same(spec, semver.sort(shuffled))
    for i = 1, #spec - 1 do
      assert.are.equal(-1, semver.compare(spec[i], spec[i + 1]))
      assert.are.equal(1, semver.compare(spec[i + 1], spec[i]))
      assert.is_true(semver.parse(spec[i]) < semver.parse(spec[i + 1]))
    end
    assert.are.equal(0, semver.compare("1.0.0+a", "1.0.0+b"))
    assert.is_true(semver.parse("1.0.0+a") == semver.parse("1.0.0"))
    local desc = semver.sort({ { name = "1.0.0" }, { name = "2.0.0-rc.1" }, { name = "1.10.0" } }, true)
    assert.are.same({ "2.0.0-rc.1", "1.10.0", "1.0.0" }, { desc[1].name, desc[2].name, desc[3].name })
    assert.are.equal("1.10.0", (semver.max({ "1.9.0", "x", "1.10.0", "2.0.0-rc.1" }, { prereleases = false })))
  end)

  it("bumps every level, pre-releases and build metadata", function()
    local cases = {
      { "1.2.3", "major", nil, "2.0.0" }, { "1.2.3", "minor", nil, "1.3.0" }, { "1.2.3", "patch", nil, "1.2.4" },
      { "1.2.3-rc.1", "patch", nil, "1.2.3" }, { "1.2.0-rc.1", "minor", nil, "1.2.0" },
      { "1.2.3-rc.1", "minor", nil, "1.3.0" }, { "1.0.0-rc.1", "major", nil, "1.0.0" },
      { "1.2.0-rc.1", "major", nil, "2.0.0" }, { "1.2.3+b.7", "patch", nil, "1.2.4" },
      { "1.2.3", "prerelease", { prerelease = "rc" }, "1.2.4-rc.0" },
      { "1.2.4-rc.0", "prerelease", { prerelease = "rc" }, "1.2.4-rc.1" },
      { "1.2.4-beta.3", "prerelease", { prerelease = "rc" }, "1.2.4-rc.0" },
      { "1.2.4-alpha", "prerelease", nil, "1.2.4-alpha.0" },
      { "1.2.4-alpha.1.x", "prerelease", nil, "1.2.4-alpha.2.x" },
      { "1.2.3", "premajor", { prerelease = "rc" }, "2.0.0-rc.0" },
      { "1.2.3", "preminor", { prerelease = "beta" }, "1.3.0-beta.0" },
      { "1.2.3", "prepatch", nil, "1.2.4-0" },
      { "1.2.4-rc.2", "release", nil, "1.2.4" },
      { "1.2.3", "build", { build = "dev.5" }, "1.2.3+dev.5" },
      { "1.2.3", "minor", { build = "sha.abc" }, "1.3.0+sha.abc" },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[4], semver.bump(c[1], c[2], c[3]):tostring(), c[1] .. " " .. c[2])
    end
    local v = semver.parse("1.2.3")
    assert.are.equal("1.3.0", tostring(v:bump("minor")))
    assert.are.equal("1.2.3", tostring(v))  -- unchanged
    assert.has_error(function() semver.bump("1.2.3", "huge") end,
      "semver.bump: unknown kind 'huge' (major, minor, patch, premajor, preminor, prepatch, prerelease, release or build)")
    assert.has_error(function() semver.bump("1.2.3", "build") end, "semver.bump: kind 'build' needs opts.build")
  end)

  it("orders tag names loosely, SemVer when both names are one", function()
    local cmp = semver.compare_loose
    assert.are.equal(-1, cmp("v1.9.0", "v1.10.0"))
    assert.are.equal(-1, cmp("v1.0.0-rc.9", "v1.0.0-rc.10"))
    assert.are.equal(-1, cmp("v1.0.0-beta.11", "v1.0.0-rc.1"))
    assert.are.equal(-1, cmp("v1.0.0-alpha.beta", "v1.0.0-beta"))
    assert.are.equal(1, cmp("1.0.0.1", "1.0.0"))
    assert.are.equal(-1, cmp("1.0-rc1", "1.0"))
    assert.are.same({ "release-2", "release-10", "v0.2", "v0.10", "v1.0-beta", "v1.0" },
      semver.sort_loose({ "v1.0", "release-10", "v0.10", "v1.0-beta", "release-2", "v0.2" }))
  end)
end)

describe("relua.pep440", function()
  local PY = "/usr/bin/python3"  -- Debian's python3, with python3-packaging (tools/deps.sh)

  it("parses and normalizes every spelling PEP 440 allows", function()
    local cases = {
      { "1.0", "1.0" }, { "v1.0", "1.0" }, { "1.0.0-RC1", "1.0.0rc1" }, { "1.0c1", "1.0rc1" },
      { "1.0-alpha.2", "1.0a2" }, { "1.0beta", "1.0b0" }, { "1.0.preview-3", "1.0rc3" },
      { "1.0-1", "1.0.post1" }, { "1.0.rev2", "1.0.post2" }, { "1.0r", "1.0.post0" }, { "1.0postdev", "1.0.post0.dev0" },
      { "1.0-dev-7", "1.0.dev7" }, { "2!1.0a1.post2.dev3+Ubuntu-1_2", "2!1.0a1.post2.dev3+ubuntu.1.2" },
      { "  1.0  ", "1.0" },
    }
    for _, c in ipairs(cases) do assert.are.equal(c[2], pep440.normalize(c[1]), c[1]) end
    local v = assert(pep440.parse("1!2.3.4rc5.post6.dev7+abc.8"))
    assert.are.equal(1, v.epoch)
    assert.are.same({ 2, 3, 4 }, v.release)
    assert.are.same({ "rc", 5 }, v.pre)
    assert.are.equal(6, v.post)
    assert.are.equal(7, v.dev)
    assert.are.same({ "abc", 8 }, v.local_)
    assert.is_true(v:is_prerelease())
    for _, bad in ipairs({ "1.0..1", "1.0.", "a1.0", "1.0+", "1.0+a..b", "1.0-rc-", "1.0 beta", "", "1.0+_x" }) do
      local p, msg, code = pep440.parse(bad)
      assert.is_nil(p, bad)
      assert.are.equal("bad_version", code)
      assert.truthy(msg:find("'" .. bad .. "'", 1, true))
    end
  end)

  it("orders like pip (Python's packaging), epochs, pre/post/dev and local versions included", function()
    local list = { "1.0", "1.0.post1", "1.0.dev0", "1.0a1", "1.0a1.dev1", "1!0.1", "1.0+local.1", "1.0+local",
                   "1.0+1", "1.0+abc.2", "1.0+abc.10", "1.0rc1", "1.0b2.post3", "0.9", "1.0.0", "1.0.0.0.1",
                   "1.0.post1.dev2", "1.0.post1+x", "1.0rc1.post1.dev1", "2.0", "1.10", "1.9", "1.0b10", "1.0b2",
                   "1.0a1.post1", "1!0.0.dev1", "0.0.1", "1.0.dev10", "1.0.dev2" }
    local mine = pep440.sort({ table.unpack(list) })
    local script = "import json,sys\nfrom packaging.version import Version\n"
      .. "print(json.dumps(sorted(json.load(sys.stdin), key=Version)))"
    local r = assert(proc.run({ PY, "-c", script }, { stdin = json.encode(list) }))
    assert.are.equal(0, r.code, r.stderr)
    local theirs = json.decode(r.stdout)
    -- equal versions (1.0 == 1.0.0) may come in either order: compare by normalized equality
    assert.are.equal(#theirs, #mine)
    for i = 1, #mine do
      assert.are.equal(0, pep440.compare(mine[i], theirs[i]), string.format("%d: %s vs %s", i, mine[i], theirs[i]))
    end
    assert.are.equal(0, pep440.compare("1.0", "1.0.0"))
    assert.are.equal(-1, pep440.compare("1.0.dev0", "1.0a1"))
    assert.are.equal(1, pep440.compare("1!0.1", "99.0"))
  end)

  it("sorts names that are not versions first when asked to, and raises otherwise", function()
    assert.are.same({ "latest", "1.0", "1.1" }, pep440.sort({ "1.1", "latest", "1.0" }, false, { invalid = "first" }))
    assert.has_error(function() pep440.sort({ "1.0", "latest" }) end)
  end)
end)
