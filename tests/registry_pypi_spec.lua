-- relua.registry.pypi against the real test index (tests/support/pypi_server.py) on
-- 127.0.0.1: verify-or-publish, immutability, doubtful answers resolved by looking, faults.
local reg = require "support.registries"
local h = require "support.h"
local pypi = require "relua.registry.pypi"
local fs = require "relua.fs"
local proc = require "relua.proc"
local http = require "relua.http"
local json = require "relua.json"

-- The clients log each outcome on stderr; keep the test output to the test results.
local log_level
setup(function() log_level = require("relua.log").level("error") end)
teardown(function() require("relua.log").level(log_level) end)

local function uploads_in(log)
  local n = 0
  for _, line in ipairs(log) do
    if line:match("^POST /legacy/") then n = n + 1 end
  end
  return n
end

local function last_upload(log)
  for i = #log, 1, -1 do
    if log[i]:match("^POST /legacy/") then return log[i] end
  end
end

local function index_files(server, name)
  local resp = assert(http.get(server.index .. name .. "/",
    { headers = { accept = "application/vnd.pypi.simple.v1+json" }, progress = false, timeout = 10 }))
  if resp.status == 404 then return {} end
  return json.decode(resp.body).files
end

-- A Lua script run by the relua binary, as a user runs it.
local function script(dir, body)
  return h.spit(fs.join(dir, "script-" .. tostring(math.random(1e9)) .. ".lua"), body)
end

describe("relua.registry.pypi", function()
  local server, dir, opts

  setup(function()
    server = reg.pypi()
    dir = assert(fs.tmpdir("relua-pypi-reg-"))
    opts = { url = server.legacy, user = server.user, password = server.password, timeout = 30, confirm_timeout = 5 }
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  describe("inspect", function()
    it("reads a wheel's METADATA and digests the file", function()
      local whl = reg.build_dists(fs.join(dir, "i"), { "Insp.Pkg", "0.3.1" })[1]
      local d = assert(pypi.inspect(whl))
      assert.are.equal("Insp.Pkg", d.name)
      assert.are.equal("0.3.1", d.version)
      assert.are.equal("bdist_wheel", d.filetype)
      assert.are.equal("py3", d.pyversion)
      assert.are.equal("2.1", d.metadata_version)
      assert.are.equal(">=3.7", d.requires_python)
      assert.are.equal(fs.digest(whl, "sha256"), d.sha256)
      assert.are.equal(fs.digest(whl, "md5"), d.md5)
      assert.are.equal(fs.stat(whl).size, d.size)
    end)

    it("reads a large wheel (streamed, not held in memory) to the same result", function()
      local big = reg.build_dists(fs.join(dir, "big"), { "Insp.Big", "1.0" }, { payload = 9 * 1024 * 1024 })[1]
      local d = assert(pypi.inspect(big))
      assert.are.same({ "Insp.Big", "1.0" }, { d.name, d.version })
      assert.is_true(d.size > 8 * 1024 * 1024)
      assert.are.equal(fs.stat(big).size, d.size)
      assert.are.equal(fs.digest(big, "sha256"), d.sha256)
      assert.are.equal(fs.digest(big, "md5"), d.md5)
    end)

    it("reads an sdist's PKG-INFO", function()
      local sd = reg.build_dists(fs.join(dir, "i"), { "Insp.Pkg", "0.3.1" }, { sdist = true })[1]
      local d = assert(pypi.inspect(sd))
      assert.are.same({ "Insp.Pkg", "0.3.1", "sdist", "source" }, { d.name, d.version, d.filetype, d.pyversion })
    end)

    it("names the file and the problem for what is not a distribution", function()
      local _, msg, code = pypi.inspect(h.spit(fs.join(dir, "notes.txt"), "x"))
      assert.are.equal("bad_dist", code)
      assert.matches("notes.txt: not a wheel", msg, 1, true)
      local fake = h.spit(fs.join(dir, "fake-1.0-py3-none-any.whl"), "not a zip")
      _, msg = pypi.inspect(fake)
      assert.matches(fake, msg, 1, true)
      _, msg, code = pypi.inspect(fs.join(dir, "gone-1.0-py3-none-any.whl"))
      assert.are.equal("ENOENT", code)
      assert.matches("gone-1.0-py3-none-any.whl", msg, 1, true)
    end)
  end)

  describe("publish", function()
    local whl

    setup(function()
      whl = reg.build_dists(fs.join(dir, "p"), { "Pub.Pkg", "1.0.0" })[1]
    end)

    it("uploads an absent file, reads the index back and reports published", function()
      local r = pypi.publish(whl, opts)
      assert.are.equal("published", r.status)
      assert.are.equal(fs.digest(whl, "sha256"), r.sha256)
      local files = index_files(server, "pub-pkg")
      assert.are.equal(1, #files)
      assert.are.equal(r.sha256, files[1].hashes.sha256)
      -- the metadata fields came from the distribution
      local doc = json.decode(assert(http.get(server.url .. "pypi/pub-pkg/json", { progress = false })).body)
      assert.are.equal("relua test package", doc.info.summary)
      assert.are.equal(">=3.7", doc.info.requires_python)
      assert.are.equal("bdist_wheel", doc.urls[1].packagetype)
      assert.are.equal("py3", doc.urls[1].python_version)
    end)

    it("skips an identical file already there without sending an upload", function()
      local before = server.stats()
      local r = pypi.publish(whl, opts)
      assert.are.equal("skipped_existing", r.status)
      local after = server.stats()
      assert.are.equal(before.uploads, after.uploads)
      assert.are.equal(uploads_in(before.log), uploads_in(after.log))
    end)

    it("refuses different bytes for a published file with an immutable error, leaving the index as it was", function()
      local rebuilt = reg.build_dists(fs.join(dir, "p2"), { "Pub.Pkg", "1.0.0" }, { salt = "rebuilt" })[1]
      local before = server.stats()
      local ok, e = pcall(pypi.publish, rebuilt, opts)
      assert.is_false(ok)
      assert.are.equal("immutable", e.code)
      assert.matches(fs.digest(whl, "sha256"), e.message, 1, true)
      assert.matches(fs.digest(rebuilt, "sha256"), e.message, 1, true)
      assert.matches("Pub_Pkg-1.0.0-py3-none-any.whl", e.message, 1, true)
      assert.matches("bump the version", e.hint, 1, true)
      assert.matches("new version", e.hint, 1, true)
      assert.are.equal(before.uploads, server.stats().uploads)
      local files = index_files(server, "pub-pkg")
      assert.are.equal(1, #files)
      assert.are.equal(fs.digest(whl, "sha256"), files[1].hashes.sha256)
    end)

    it("fills a gap: the sdist of a version whose wheel is already there", function()
      local sd = reg.build_dists(fs.join(dir, "p"), { "Pub.Pkg", "1.0.0" }, { sdist = true })[1]
      assert.are.equal("published", pypi.publish(sd, opts).status)
      assert.are.equal(2, #index_files(server, "pub-pkg"))
    end)

    it("publish_all checks everything first and uploads nothing when one file conflicts", function()
      local a = reg.build_dists(fs.join(dir, "all"), { "All.A", "1.0", "All.B", "1.0" })
      local res = pypi.publish_all(a, opts)
      assert.are.same({ "published", "published" }, { res[1].status, res[2].status })
      local c = reg.build_dists(fs.join(dir, "all2"), { "All.C", "1.0" })[1]
      local b2 = reg.build_dists(fs.join(dir, "all3"), { "All.B", "1.0" }, { salt = "changed" })[1]
      local before = server.stats().uploads
      local ok, e = pcall(pypi.publish_all, { a[1], c, b2 }, opts)
      assert.is_false(ok)
      assert.are.equal("immutable", e.code)
      assert.are.equal(before, server.stats().uploads)
      assert.are.same({}, index_files(server, "all-c"))
      res = pypi.publish_all({ a[1], c, a[2] }, opts)
      assert.are.same({ "skipped_existing", "published", "skipped_existing" },
        { res[1].status, res[2].status, res[3].status })
    end)
  end)

  describe("reading the index", function()
    setup(function()
      local paths = reg.build_dists(fs.join(dir, "r"), { "Read_Me", "1.10", "Read_Me", "1.2", "Read_Me", "1.0.1",
        "Read_Me", "1.0", "Read_Me", "2.0rc1" })
      assert(pypi.publish_all(paths, opts))
    end)

    for _, api in ipairs({ "simple", "html", "json" }) do
      it("lists versions in order and the files of a version with their sha256 (" .. api .. ")", function()
        local o = { index = server.index, api = api }
        assert.are.same({ "1.0", "1.0.1", "1.2", "1.10", "2.0rc1" }, pypi.versions("read.me", o))
        local files = pypi.files("READ-ME", "1.2", o)
        assert.are.equal(1, #files)
        assert.are.equal("Read_Me-1.2-py3-none-any.whl", files[1].filename)
        assert.are.equal(fs.digest(fs.join(dir, "r", "Read_Me-1.2-py3-none-any.whl"), "sha256"), files[1].sha256)
        assert.matches("^http://127%.0%.0%.1:%d+/files/Read_Me%-1%.2%-py3%-none%-any%.whl$", files[1].url)
      end)
    end

    it("reports a project the index does not know as empty, not as a failure", function()
      local p = assert(pypi.project("no-such-project", { index = server.index }))
      assert.is_false(p.exists)
      assert.are.same({}, pypi.versions("no-such-project", { index = server.index }))
    end)

    it("normalises names per PEP 503", function()
      assert.are.equal("foo-bar-baz", pypi.normalize("Foo.Bar__baz"))
      assert.are.equal("a-b", pypi.normalize("A-_.-B"))
    end)
  end)

  describe("doubtful answers are resolved by looking", function()
    -- The index's read side lagging behind its upload API (a stale CDN page) is played by a
    -- 404 injected into the first lookup.
    it("a 409 on upload (the lookup missed it) becomes skipped_existing after comparing", function()
      local whl = reg.build_dists(fs.join(dir, "c"), { "Conf.Pkg", "1.0" })[1]
      assert.are.equal("published", pypi.publish(whl, opts).status)
      server.fail({ status = 404, count = 1, prefix = "/simple/conf-pkg/" })
      server.fail({ status = 404, count = 1, prefix = "/pypi/conf-pkg/" })  -- both read APIs lag
      local before = server.stats()
      assert.are.equal("skipped_existing", pypi.publish(whl, opts).status)
      local after = server.stats()
      assert.are.equal(before.uploads + 1, after.uploads)      -- the upload was sent, and refused
      assert.are.equal("POST /legacy/ 409", last_upload(after.log), table.concat(after.log, "\n"))
      assert.are.equal(1, #index_files(server, "conf-pkg"))
    end)

    it("a 409 for different bytes becomes the immutable error", function()
      local rebuilt = reg.build_dists(fs.join(dir, "c2"), { "Conf.Pkg", "1.0" }, { salt = "other" })[1]
      server.fail({ status = 404, count = 1, prefix = "/simple/conf-pkg/" })
      server.fail({ status = 404, count = 1, prefix = "/pypi/conf-pkg/" })  -- both read APIs lag
      local ok, e = pcall(pypi.publish, rebuilt, opts)
      assert.is_false(ok)
      assert.are.equal("immutable", e.code)
    end)

    it("a 503 on upload, then success: looks, uploads again, one file on the index", function()
      local whl = reg.build_dists(fs.join(dir, "u"), { "Busy.Pkg", "1.0" })[1]
      server.fail({ status = 503, count = 1, prefix = "/legacy/", retry_after = 0 })
      local before = server.stats().uploads
      assert.are.equal("published", pypi.publish(whl, opts).status)
      assert.are.equal(before + 2, server.stats().uploads)
      assert.are.equal(1, #index_files(server, "busy-pkg"))
    end)

    it("503s on the index reads are retried", function()
      local whl = reg.build_dists(fs.join(dir, "u2"), { "Busy2.Pkg", "1.0" })[1]
      server.fail({ status = 503, count = 2, prefix = "/simple/busy2-pkg/", retry_after = 0 })
      assert.are.equal("published", pypi.publish(whl, opts).status)
    end)

    it("a connection reset after the index stored the upload: looks, finds it, published, one file", function()
      local whl = reg.build_dists(fs.join(dir, "x"), { "Reset.After", "1.0" })[1]
      server.fail({ action = "reset_after", count = 1, prefix = "/legacy/" })
      local before = server.stats().uploads
      assert.are.equal("published", pypi.publish(whl, opts).status)
      assert.are.equal(before + 1, server.stats().uploads)  -- never sent twice
      local files = index_files(server, "reset-after")
      assert.are.equal(1, #files)
      assert.are.equal(fs.digest(whl, "sha256"), files[1].hashes.sha256)
    end)

    it("a connection reset before the index read the upload: looks, uploads again, one file", function()
      local whl = reg.build_dists(fs.join(dir, "x"), { "Reset.Before", "1.0" })[1]
      server.fail({ action = "reset_before", count = 1, prefix = "/legacy/" })
      local before = server.stats().uploads
      assert.are.equal("published", pypi.publish(whl, opts).status)
      assert.are.equal(before + 2, server.stats().uploads)
      assert.are.equal(1, #index_files(server, "reset-before"))
    end)

    it("a connection reset by a proxy in the middle of the upload (faultproxy): re-checks, one file", function()
      local proxy = reg.faultproxy(server.port)
      local ok, e = pcall(function()
        -- the lookup's connection passes, the upload's is reset mid-body
        proxy.fault({ fault = "pass" }, { fault = "reset", after = 100 })
        local whl = reg.build_dists(fs.join(dir, "fp"), { "Proxy.Reset", "1.0" })[1]
        local r = pypi.publish(whl, { url = proxy.url .. "legacy/", index = proxy.url .. "simple/", user = server.user,
          password = server.password, timeout = 30, confirm_timeout = 5 })
        assert.are.equal("published", r.status)
        assert.are.equal(1, proxy.stats().faults.reset)
        local files = index_files(server, "proxy-reset")
        assert.are.equal(1, #files)
        assert.are.equal(fs.digest(whl, "sha256"), files[1].hashes.sha256)
      end)
      proxy.stop()
      if not ok then error(e, 0) end
    end)
  end)

  describe("as a user sees it (relua subprocess)", function()
    it("a refused token is a clear auth error naming the variable, and the token is never printed", function()
      local whl = reg.build_dists(fs.join(dir, "auth"), { "Auth.Pkg", "1.0" })[1]
      local s = script(dir, 'local pypi = require "relua.registry.pypi"\n'
        .. 'local r = pypi.publish(arg[1], { url = arg[2], user = "relua" })\nprint("status=" .. r.status)\n')
      local secret = "wrong-token-5f1e2d3c4b"
      local r = h.relua({ s, whl, server.legacy }, { env = { PYPI_TOKEN = secret, TWINE_PASSWORD = false } })
      assert.are_not.equal(0, r.code)
      assert.matches("PYPI_TOKEN", r.stderr, 1, true)
      assert.matches("403", r.stderr, 1, true)
      assert.matches("refused", r.stderr, 1, true)
      assert.is_nil(r.stderr:find(secret, 1, true))
      assert.is_nil(r.stdout:find(secret, 1, true))
      assert.are.same({}, index_files(server, "auth-pkg"))
      -- no variable at all
      r = h.relua({ s, whl, server.legacy }, { env = { PYPI_TOKEN = false, TWINE_PASSWORD = false } })
      assert.are_not.equal(0, r.code)
      assert.matches("PYPI_TOKEN is not set", r.stderr, 1, true)
      -- the right one from the environment
      r = h.relua({ s, whl, server.legacy }, { env = { PYPI_TOKEN = server.password, TWINE_PASSWORD = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("status=published", r.stdout, 1, true)
      assert.is_nil((r.stdout .. r.stderr):find(server.password, 1, true))
      assert.matches("pypi: published file=Auth_Pkg-1.0-py3-none-any.whl", r.stderr, 1, true)
    end)

    it("an identical re-publish sends no upload request (http trace)", function()
      local whl = reg.build_dists(fs.join(dir, "auth"), { "Auth.Pkg", "1.0" })[1]
      local s = script(dir, 'local pypi = require "relua.registry.pypi"\n'
        .. 'local r = pypi.publish(arg[1], { url = arg[2], user = "relua" })\nprint("status=" .. r.status)\n')
      local r = h.relua({ s, whl, server.legacy }, { env = { PYPI_TOKEN = server.password, RELUA_HTTP_TRACE = "1" } })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("status=skipped_existing", r.stdout, 1, true)
      assert.matches("GET " .. server.index .. "auth-pkg/", r.stderr, 1, true)
      assert.matches("pypi: already there, identical file=Auth_Pkg-1.0-py3-none-any.whl sha256=", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("POST", 1, true))
    end)

    it("a registry that is down is an unreachable error naming the URL", function()
      local whl = reg.build_dists(fs.join(dir, "down"), { "Down.Pkg", "1.0" })[1]
      local ok, e = pcall(pypi.publish, whl, { url = "http://127.0.0.1:9/legacy/", password = "x",
        timeout = 5, retry = false })
      assert.is_false(ok)
      assert.are.equal("unreachable", e.code)
      assert.matches("http://127.0.0.1:9/simple/down-pkg/", e.message, 1, true)
      assert.matches("reachable", e.hint, 1, true)
    end)
  end)
end)

describe("relua.registry.pypi against an index that answers duplicates like pypi.org", function()
  local server, dir

  setup(function()
    server = reg.pypi({ warehouse = true })
    dir = assert(fs.tmpdir("relua-pypi-wh-"))
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("a 400 'File already exists' for different bytes becomes the immutable error", function()
    local opts = { url = server.legacy, user = server.user, password = server.password, timeout = 30 }
    local whl = reg.build_dists(fs.join(dir, "a"), { "Wh.Pkg", "1.0" })[1]
    assert.are.equal("published", pypi.publish(whl, opts).status)
    local rebuilt = reg.build_dists(fs.join(dir, "b"), { "Wh.Pkg", "1.0" }, { salt = "b" })[1]
    server.fail({ status = 404, count = 1, prefix = "/simple/wh-pkg/" })
    server.fail({ status = 404, count = 1, prefix = "/pypi/wh-pkg/" })  -- both read APIs lag
    local ok, e = pcall(pypi.publish, rebuilt, opts)
    assert.is_false(ok)
    assert.are.equal("immutable", e.code)
    assert.are.equal("POST /legacy/ 400", last_upload(server.stats().log))
  end)
end)

describe("relua.registry.pypi against an index with only the JSON API", function()
  local server, dir

  setup(function()
    server = reg.pypi({ no_simple = true })
    dir = assert(fs.tmpdir("relua-pypi-json-"))
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("verifies through /pypi/NAME/json: published, then skipped_existing without an upload, then immutable", function()
    local opts = { url = server.legacy, user = server.user, password = server.password, timeout = 30, confirm_timeout = 5 }
    local whl = reg.build_dists(fs.join(dir, "a"), { "Json.Only", "1.0" })[1]
    assert.are.equal("published", pypi.publish(whl, opts).status)
    local before = server.stats().uploads
    assert.are.equal("skipped_existing", pypi.publish(whl, opts).status)
    assert.are.equal(before, server.stats().uploads)
    local rebuilt = reg.build_dists(fs.join(dir, "b"), { "Json.Only", "1.0" }, { salt = "b" })[1]
    local ok, e = pcall(pypi.publish, rebuilt, opts)
    assert.is_false(ok)
    assert.are.equal("immutable", e.code)
    assert.are.equal(before, server.stats().uploads)
    assert.are.same({ "1.0" }, pypi.versions("json-only", { index = server.index }))
  end)
end)

describe("relua.core.archive", function()
  local archive = require "relua.core.archive"
  local dir

  setup(function() dir = assert(fs.tmpdir("relua-archive-")) end)
  teardown(function() if dir then fs.remove(dir, { recursive = true }) end end)

  it("lists entries and reads one, bounded by max", function()
    local whl = reg.build_dists(dir, { "Arc.Pkg", "1.0" })[1]
    local r <close> = assert(archive.open(whl))
    local names = {}
    while true do
      local e = r:next()
      if not e then break end
      names[#names + 1] = e.name
      if e.name == "Arc_Pkg-1.0.dist-info/METADATA" then
        local _, msg, code = r:read(10)
        assert.are.equal("too_large", code)
        assert.matches("larger than 10 bytes", msg, 1, true)
      end
    end
    assert.are.same({ "arc_pkg/__init__.py", "Arc_Pkg-1.0.dist-info/METADATA", "Arc_Pkg-1.0.dist-info/WHEEL",
      "Arc_Pkg-1.0.dist-info/RECORD" }, names)
  end)

  it("raises on misuse: read before next, a closed reader", function()
    local whl = reg.build_dists(dir, { "Arc.Pkg", "1.0" })[1]
    local r = assert(archive.open(whl))
    assert.has_error(function() r:read() end, "archive.read: no current entry (call next() first)")
    r:close()
    r:close()  -- twice is fine
    assert.has_error(function() r:next() end, "archive: reader is closed")
  end)

  it("opens only the kind asked for, when asked", function()
    local whl = reg.build_dists(dir, { "Kind.Pkg", "1.0" })[1]
    local sdist = reg.build_dists(dir, { "Kind.Pkg", "1.0" }, { sdist = true })[1]
    local r = assert(archive.open(whl, "zip"))
    assert.are.equal("kind_pkg/__init__.py", r:next().name)
    r:close()
    r = assert(archive.open_memory(fs.read(whl), "in memory", "zip"))  -- the same from a string
    assert.are.equal("kind_pkg/__init__.py", r:next().name)
    r:close()
    local _, junk_msg, junk_code = archive.open_memory("not an archive", "junk.whl", "zip")
    assert.are.equal("archive", junk_code)
    assert.matches("junk.whl", junk_msg, 1, true)
    r = assert(archive.open(sdist, "tar"))
    assert.matches("^kind_pkg%-1%.0/", r:next().name)
    r:close()
    for _, case in ipairs({ { sdist, "zip" }, { whl, "tar" } }) do
      local bad, msg, code = archive.open(case[1], case[2])
      if bad then bad, msg, code = bad:next() end  -- libarchive may only see it at the first entry
      assert.is_nil(bad)
      assert.are.equal("archive", code)
      assert.matches(fs.basename(case[1]), msg, 1, true)
    end
    assert.has_error(function() archive.open(whl, "rar") end)
  end)

  it("gives entry names in UTF-8, ASCII or not", function()
    local zip = fs.join(dir, "names.zip")
    local r = assert(proc.run({ "python3", "-c", "import sys, zipfile\n"
      .. "with zipfile.ZipFile(sys.argv[1], 'w') as z:\n"
      .. "    z.writestr('plain/METADATA', 'x')\n"
      .. "    z.writestr('caf\\u00e9-\\u65e5\\u672c/METADATA', 'y')\n", zip }))
    assert.are.equal(0, r.code, r.stderr)
    local reader = assert(archive.open(zip, "zip"))
    assert.are.equal("plain/METADATA", reader:next().name)
    assert.are.equal("café-日本/METADATA", reader:next().name)
    reader:close()
  end)

  it("fails cleanly on what is not an archive", function()
    local _, msg, code = archive.open(h.spit(fs.join(dir, "plain.txt"), "hello\n"))
    assert.are.equal("archive", code)
    assert.matches("plain.txt", msg, 1, true)
  end)

  it("is collected by the garbage collector", function()
    local whl = reg.build_dists(dir, { "Arc.Pkg", "1.0" })[1]
    local weak = setmetatable({}, { __mode = "v" })
    weak[1] = assert(archive.open(whl))
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end)
end)

describe("relua.registry.pypi #rss", function()
  local server, dir

  setup(function()
    server = reg.pypi()
    dir = assert(fs.tmpdir("relua-pypi-big-"))
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("uploads a 1 GB wheel with flat memory (peak resident set under 30 MB)", function()
    local size = 1024 * 1024 * 1024
    local whl = reg.build_dists(dir, { "Big.Pkg", "1.0" }, { payload = size })[1]
    local s = script(dir, [[
      local pypi = require "relua.registry.pypi"
      local r = pypi.publish(arg[1], { url = arg[2], user = "relua", timeout = 600, progress = false })
      local status = io.open("/proc/self/status"):read("a")
      print("status=" .. r.status .. " sha256=" .. r.sha256 .. " hwm_kb=" .. status:match("VmHWM:%s*(%d+)"))
    ]])
    local r = h.relua({ s, whl, server.legacy }, { env = { PYPI_TOKEN = server.password } })
    assert.are.equal(0, r.code, r.stderr)
    local status, sha, hwm = r.stdout:match("status=(%S+) sha256=(%x+) hwm_kb=(%d+)")
    assert.are.equal("published", status)
    local files = index_files(server, "big-pkg")
    assert.are.equal(1, #files)
    assert.are.equal(sha, files[1].hashes.sha256)
    assert.is_true(files[1].size > size)
    assert.is_true(tonumber(hwm) < 30 * 1024, "peak resident set " .. hwm .. " kB")
  end)
end)
