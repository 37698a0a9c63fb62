-- relua.registry.npm against a real verdaccio 6.8.0 on 127.0.0.1 (tests/npm, no uplinks):
-- metadata, verify-or-publish with integrity, dist-tags, tokens from env and .npmrc.
local reg = require "support.registries"
local h = require "support.h"
local npm = require "relua.registry.npm"
local fs = require "relua.fs"

-- The clients log each outcome on stderr; keep the test output to the test results.
local log_level
setup(function() log_level = require("relua.log").level("error") end)
teardown(function() require("relua.log").level(log_level) end)

local function script(dir, body)
  return h.spit(fs.join(dir, "script-" .. tostring(math.random(1e9)) .. ".lua"), body)
end

describe("relua.registry.npm", function()
  local server, dir, opts, tgz, other, v2, plain1, plain2, plain3, f1, f2

  setup(function()
    server = reg.verdaccio()
    dir = assert(fs.tmpdir("relua-npm-reg-"))
    opts = { registry = server.url, token = server.token, timeout = 30, confirm_timeout = 5 }
    tgz, v2, plain1, plain2, plain3 = table.unpack(reg.npm_pack(fs.join(dir, "a"), {
      { manifest = { name = "@relua/demo", version = "1.0.0", description = "relua test" } },
      { manifest = { name = "@relua/demo", version = "1.1.0-beta.1" } },
      { manifest = { name = "plain-pkg", version = "0.1.0" } },
      { manifest = { name = "plain-pkg", version = "0.2.0" } },
      { manifest = { name = "plain-pkg", version = "0.3.0" } },
    }))
    f1, f2 = table.unpack(reg.npm_pack(fs.join(dir, "f"), {
      { manifest = { name = "fault-pkg", version = "1.0.0" } },
      { manifest = { name = "fault-pkg", version = "2.0.0" } },
    }))
    -- the same name and version, rebuilt with other bytes
    other = reg.npm_pack(fs.join(dir, "b"), {
      { manifest = { name = "@relua/demo", version = "1.0.0", description = "relua test" }, content = "module.exports = 2;\n" },
    })[1]
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("inspects an npm pack tarball: package.json, sha512 integrity, sha1 shasum", function()
    local t = assert(npm.inspect(tgz))
    assert.are.equal("@relua/demo", t.name)
    assert.are.equal("1.0.0", t.version)
    assert.are.equal("relua test", t.manifest.description)
    assert.are.equal("sha512-" .. fs.digest(tgz, "sha512", "base64"), t.integrity)
    assert.are.equal(fs.digest(tgz, "sha1"), t.shasum)
    local _, msg, code = npm.inspect(h.spit(fs.join(dir, "junk.tgz"), "junk"))
    assert.are.equal("archive", code)
    assert.matches("junk.tgz", msg, 1, true)
  end)

  it("publishes an absent version, then reads it back: integrity, shasum, dist-tag", function()
    local r = npm.publish(tgz, opts)
    assert.are.equal("published", r.status)
    assert.are.equal("latest", r.tag)
    local dist = assert(npm.dist("@relua/demo", "1.0.0", opts))
    assert.are.equal("sha512-" .. fs.digest(tgz, "sha512", "base64"), dist.integrity)
    assert.are.equal(fs.digest(tgz, "sha1"), dist.shasum)
    assert.are.same({ latest = "1.0.0" }, npm.dist_tags("@relua/demo", opts))
    assert.are.same({ "1.0.0" }, npm.versions("@relua/demo", opts))
    local doc = assert(npm.packument("@relua/demo", opts))
    assert.are.equal("relua test", doc.versions["1.0.0"].description)
    -- the registry serves the very bytes
    local http = require "relua.http"
    local out = fs.join(dir, "dl.tgz")
    assert.are.equal(200, assert(http.get(dist.tarball, { output = out, progress = false })).status)
    assert.are.equal(fs.digest(tgz, "sha512"), fs.digest(out, "sha512"))
  end)

  it("skips an identical re-publish without a PUT (http trace)", function()
    local s = script(dir, 'local npm = require "relua.registry.npm"\n'
      .. 'local r = npm.publish(arg[1], { registry = arg[2] })\nprint("status=" .. r.status)\n')
    local r = h.relua({ s, tgz, server.url }, { env = { NPM_TOKEN = server.token, RELUA_HTTP_TRACE = "1" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("status=skipped_existing", r.stdout, 1, true)
    assert.matches("> GET " .. server.url, r.stderr, 1, true)
    assert.is_nil(r.stderr:find("PUT", 1, true))
    assert.is_nil((r.stdout .. r.stderr):find(server.token, 1, true))
  end)

  it("refuses different bytes for a published version with an immutable error; the registry keeps the first", function()
    local ok, e = pcall(npm.publish, other, opts)
    assert.is_false(ok)
    assert.are.equal("immutable", e.code)
    assert.matches("sha512-" .. fs.digest(tgz, "sha512", "base64"), e.message, 1, true)
    assert.matches("sha512-" .. fs.digest(other, "sha512", "base64"), e.message, 1, true)
    assert.matches("bump the version", e.hint, 1, true)
    assert.are.equal("sha512-" .. fs.digest(tgz, "sha512", "base64"), npm.dist("@relua/demo", "1.0.0", opts).integrity)
  end)

  it("publishes a new version with another dist-tag, keeping latest", function()
    local r = npm.publish(v2, { registry = server.url, token = server.token, tag = "next" })
    assert.are.equal("published", r.status)
    assert.are.same({ latest = "1.0.0", next = "1.1.0-beta.1" }, npm.dist_tags("@relua/demo", opts))
    assert.are.same({ "1.0.0", "1.1.0-beta.1" }, npm.versions("@relua/demo", opts))
  end)

  it("sets a dist-tag idempotently", function()
    assert.are.same({ status = "set", previous = "1.1.0-beta.1" }, npm.tag("@relua/demo", "1.0.0", "next", opts))
    assert.are.same({ status = "unchanged" }, npm.tag("@relua/demo", "1.0.0", "next", opts))
    assert.are.equal("1.0.0", npm.dist_tags("@relua/demo", opts).next)
    local ok, e = pcall(npm.tag, "@relua/demo", "1.0.0", "stable", { registry = server.url, token = "not-a-token" })
    assert.is_false(ok)
    assert.are.equal("auth", e.code)
    assert.is_nil(e.message:find("not-a-token", 1, true))
  end)

  it("reads the abbreviated metadata", function()
    local doc = assert(npm.abbreviated("@relua/demo", opts))
    assert.are.equal("@relua/demo", doc.name)
    assert.truthy(doc.versions["1.0.0"].dist.integrity)
  end)

  it("reports an unknown package as not_found, and empty versions", function()
    local doc, msg, code = npm.packument("no-such-package", opts)
    assert.is_nil(doc)
    assert.are.equal("not_found", code)
    assert.matches("no-such-package", msg, 1, true)
    assert.are.same({}, npm.versions("no-such-package", opts))
    assert.is_nil(npm.dist("no-such-package", "1.0.0", opts))
  end)

  it("takes the token from an .npmrc //host:port/:_authToken line (with ${VAR})", function()
    local npmrc = h.spit(fs.join(dir, "npmrc"), "registry=" .. server.url .. "\n//127.0.0.1:" .. server.port
      .. "/:_authToken=${RELUA_TEST_NPM_TOKEN}\n")
    local t = plain1
    local s = script(dir, 'local npm = require "relua.registry.npm"\n'
      .. 'local r = npm.publish(arg[1], { registry = arg[2], npmrc = arg[3] })\nprint("status=" .. r.status)\n')
    local r = h.relua({ s, t, server.url, npmrc }, { env = { NPM_TOKEN = false, RELUA_TEST_NPM_TOKEN = server.token } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("status=published", r.stdout, 1, true)
    -- the variable it names is missing
    local t2 = plain2
    r = h.relua({ s, t2, server.url, npmrc }, { env = { NPM_TOKEN = false, RELUA_TEST_NPM_TOKEN = false } })
    assert.are_not.equal(0, r.code)
    assert.matches("RELUA_TEST_NPM_TOKEN", r.stderr, 1, true)
  end)

  it("a refused token is a clear auth error naming the variable, and the token is never printed", function()
    local t = plain3
    local s = script(dir, 'local npm = require "relua.registry.npm"\n'
      .. 'local r = npm.publish(arg[1], { registry = arg[2], npmrc = "/nonexistent" })\nprint("status=" .. r.status)\n')
    local secret = "bad-token-7a6b5c4d3e"
    local r = h.relua({ s, t, server.url }, { env = { NPM_TOKEN = secret } })
    assert.are_not.equal(0, r.code)
    assert.matches("NPM_TOKEN", r.stderr, 1, true)
    assert.matches("refused", r.stderr, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(secret, 1, true))
    assert.are.same({ "0.1.0" }, npm.versions("plain-pkg", opts))
    r = h.relua({ s, t, server.url }, { env = { NPM_TOKEN = false } })
    assert.are_not.equal(0, r.code)
    assert.matches("NPM_TOKEN is not set", r.stderr, 1, true)
  end)

  describe("through a fault proxy (a new proxy per test: no pooled connection)", function()
    -- Runs fn(proxy, opts) with a fault proxy in front of verdaccio, always stopped.
    local function with_proxy(fn)
      local proxy = reg.faultproxy(server.port)
      local ok, e = pcall(fn, proxy, { registry = proxy.url, token = server.token, timeout = 30, confirm_timeout = 5 })
      proxy.stop()
      if not ok then error(e, 0) end
    end

    it("a 503 on the PUT, then success: looks, publishes again, one version", function()
      with_proxy(function(proxy, popts)
        proxy.fault({ fault = "pass" }, { fault = "status", status = 503, retry_after = "0" })
        local r = npm.publish(f1, popts)
        assert.are.equal("published", r.status)
        assert.are.equal(1, proxy.stats().faults.status)
        assert.are.same({ "1.0.0" }, npm.versions("fault-pkg", opts))
      end)
    end)

    it("a connection reset during the PUT: re-checks, publishes, one version with the right integrity", function()
      with_proxy(function(proxy, popts)
        proxy.fault({ fault = "pass" }, { fault = "reset", after = 100 })
        local r = npm.publish(f2, popts)
        assert.are.equal("published", r.status)
        assert.are.equal(1, proxy.stats().faults.reset)
        assert.are.same({ "1.0.0", "2.0.0" }, npm.versions("fault-pkg", opts))
        assert.are.equal(r.integrity, npm.dist("fault-pkg", "2.0.0", opts).integrity)
      end)
    end)

    it("verdaccio's 409 (the lookup missed the version) becomes skipped_existing after comparing", function()
      with_proxy(function(proxy, popts)
        -- the lookup gets a 404 from the proxy; the PUT reaches verdaccio, which refuses it
        proxy.fault({ fault = "status", status = 404 })
        assert.are.equal("skipped_existing", npm.publish(f2, popts).status)
        local stats = proxy.stats()
        assert.are.equal(1, stats.faults.status)
        local put = false
        for _, line in ipairs(stats.requests) do
          if line:match("^PUT /fault%-pkg ") then put = true end
        end
        assert.is_true(put, "the PUT went through to verdaccio")
      end)
    end)

    it("verdaccio's 409 for different bytes becomes the immutable error", function()
      with_proxy(function(proxy, popts)
        proxy.fault({ fault = "status", status = 404 })
        local ok, e = pcall(npm.publish, other, popts)
        assert.is_false(ok)
        assert.are.equal("immutable", e.code)
        assert.are.equal("sha512-" .. fs.digest(tgz, "sha512", "base64"), npm.dist("@relua/demo", "1.0.0", opts).integrity)
      end)
    end)
  end)

  it("a registry that is down is an unreachable error naming the URL", function()
    local ok, e = pcall(npm.publish, tgz, { registry = "http://127.0.0.1:9/", token = "x", timeout = 5, retry = false })
    assert.is_false(ok)
    assert.are.equal("unreachable", e.code)
    assert.matches("http://127.0.0.1:9/", e.message, 1, true)
  end)
end)
