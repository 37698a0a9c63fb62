-- Conformance of the test PyPI index (tests/support/pypi_server.py) with the real clients:
-- Debian's twine uploads to it, `twine upload --skip-existing` behaves as on PyPI, and pip
-- installs from it. The registry specs rely on this index, so it must speak the protocols.
local reg = require "support.registries"
local proc = require "relua.proc"
local fs = require "relua.fs"
local http = require "relua.http"
local json = require "relua.json"

local function twine(server, files, extra, password)
  local argv = { "twine", "upload", "--non-interactive", "--disable-progress-bar",
                 "--repository-url", server.legacy }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  for _, f in ipairs(files) do argv[#argv + 1] = f end
  return assert(proc.run(argv, { timeout = 60, env = {
    TWINE_USERNAME = server.user, TWINE_PASSWORD = password or server.password,
    TWINE_REPOSITORY = false, TWINE_REPOSITORY_URL = false, NO_COLOR = "1", COLUMNS = "400", TERM = "dumb",
    PYTHON_KEYRING_BACKEND = "keyring.backends.null.Keyring",
  } }))
end

local function simple_json(server, name)
  local resp = assert(http.get(server.index .. name .. "/",
    { headers = { accept = "application/vnd.pypi.simple.v1+json" }, progress = false }))
  return resp, resp.status == 200 and json.decode(resp.body) or nil
end

describe("pypi_server.py (the test index)", function()
  local server, dir, whl, sdist

  setup(function()
    server = reg.pypi()
    dir = assert(fs.tmpdir("relua-pypi-spec-"))
    whl = reg.build_dists(dir, { "Demo.Pkg", "1.0.0" })[1]
    sdist = reg.build_dists(dir, { "Demo.Pkg", "1.0.0" }, { sdist = true })[1]
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("accepts twine upload of a wheel and an sdist, and lists them with their sha256", function()
    local r = twine(server, { whl, sdist })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    local resp, doc = simple_json(server, "demo-pkg")
    assert.are.equal(200, resp.status)
    assert.matches("application/vnd.pypi.simple.v1+json", resp.headers["content-type"], 1, true)
    local by = {}
    for _, f in ipairs(doc.files) do by[f.filename] = f.hashes.sha256 end
    assert.are.equal(fs.digest(whl, "sha256"), by["Demo_Pkg-1.0.0-py3-none-any.whl"])
    assert.are.equal(fs.digest(sdist, "sha256"), by["demo_pkg-1.0.0.tar.gz"])
    assert.are.same({ "1.0.0" }, doc.versions)
    assert.are.same({ "Demo_Pkg-1.0.0-py3-none-any.whl", "demo_pkg-1.0.0.tar.gz" }, server.files())
  end)

  it("refuses a duplicate filename with 409, which plain twine upload reports as an error", function()
    local r = twine(server, { whl })
    assert.are_not.equal(0, r.code)
    assert.matches("409 Conflict", r.stdout .. r.stderr, 1, true)
  end)

  it("lets twine upload --skip-existing skip files already there, as on PyPI", function()
    local before = server.stats().stored
    local r = twine(server, { whl, sdist }, { "--skip-existing" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("Skipping Demo_Pkg-1.0.0-py3-none-any.whl because it appears to already", r.stdout .. r.stderr, 1, true)
    assert.are.equal(before, server.stats().stored)
  end)

  it("serves PEP 503 HTML by default, with sha256 fragments and data-requires-python", function()
    local resp = assert(http.get(server.index .. "demo-pkg/", { progress = false }))
    assert.are.equal(200, resp.status)
    assert.matches("text/html", resp.headers["content-type"], 1, true)
    local sha = fs.digest(whl, "sha256")
    assert.matches('href="/files/Demo_Pkg-1.0.0-py3-none-any.whl#sha256=' .. sha .. '"', resp.body, 1, true)
    assert.matches('data-requires-python="&gt;=3.7"', resp.body, 1, true)
    -- the root lists the project; JSON when asked
    local root = assert(http.get(server.index, { headers = { accept = "application/vnd.pypi.simple.v1+json" }, progress = false }))
    assert.are.same({ { name = "Demo.Pkg" } }, json.decode(root.body).projects)
  end)

  it("normalises project names per PEP 503 (redirects to the normalised page)", function()
    local resp = assert(http.get(server.index .. "DEMO_pkg/", { follow = false, progress = false }))
    assert.are.equal(301, resp.status)
    assert.are.equal("/simple/demo-pkg/", resp.headers.location)
    local followed, doc = simple_json(server, "Demo__PKG")
    assert.are.equal(200, followed.status)
    assert.are.equal("demo-pkg", doc.name)
  end)

  it("answers /pypi/NAME/json and /pypi/NAME/VERSION/json, and 404 for the unknown", function()
    local resp = assert(http.get(server.url .. "pypi/demo_pkg/json", { progress = false }))
    local doc = json.decode(resp.body)
    assert.are.equal("1.0.0", doc.info.version)
    assert.are.equal(2, #doc.releases["1.0.0"])
    local v = json.decode(assert(http.get(server.url .. "pypi/Demo.Pkg/1.0.0/json", { progress = false })).body)
    assert.are.equal(fs.digest(whl, "sha256"), v.urls[1].digests.sha256)
    assert.are.equal(404, assert(http.get(server.url .. "pypi/demo-pkg/9.9/json", { progress = false })).status)
    assert.are.equal(404, assert(http.get(server.index .. "nothing-here/", { progress = false })).status)
  end)

  it("serves the files for download, byte for byte", function()
    local out = fs.join(dir, "dl.whl")
    local resp = assert(http.get(server.url .. "files/Demo_Pkg-1.0.0-py3-none-any.whl", { output = out, progress = false }))
    assert.are.equal(200, resp.status)
    assert.are.equal(fs.digest(whl, "sha256"), fs.digest(out, "sha256"))
  end)

  it("is installable with pip install --index-url", function()
    local target = fs.join(dir, "site")
    local r = assert(proc.run({ "python3", "-m", "pip", "install", "--no-deps", "--no-cache-dir",
      "--disable-pip-version-check", "--target", target, "--index-url", server.index, "demo-pkg==1.0.0" },
      { timeout = 60, env = { PIP_CONFIG_FILE = "/dev/null", PIP_BREAK_SYSTEM_PACKAGES = "1" } }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.is_true(fs.exists(fs.join(target, "demo_pkg", "__init__.py")))
    assert.matches("__version__ = '1.0.0'", fs.read(fs.join(target, "demo_pkg", "__init__.py")), 1, true)
  end)

  it("refuses an upload with a wrong password (403) and stores nothing", function()
    local other = reg.build_dists(dir, { "other-pkg", "0.1" })[1]
    local r = twine(server, { other }, nil, "wrong-password")
    assert.are_not.equal(0, r.code)
    assert.matches("403", r.stdout .. r.stderr, 1, true)
    assert.are.equal(404, assert(http.get(server.index .. "other-pkg/", { progress = false })).status)
  end)

  it("refuses an upload whose sha256_digest does not match its content (400)", function()
    local other = reg.build_dists(dir, { "third-pkg", "0.1" })[1]
    local resp = assert(http.request{ method = "POST", url = server.legacy, progress = false,
      auth = { user = server.user, password = server.password },
      form = {
        { name = ":action", value = "file_upload" }, { name = "protocol_version", value = "1" },
        { name = "name", value = "third-pkg" }, { name = "version", value = "0.1" },
        { name = "filetype", value = "bdist_wheel" }, { name = "pyversion", value = "py3" },
        { name = "sha256_digest", value = string.rep("0", 64) },
        { name = "content", file = other },
      } })
    assert.are.equal(400, resp.status)
    assert.matches("digest", resp.body, 1, true)
    assert.are.equal(404, assert(http.get(server.index .. "third-pkg/", { progress = false })).status)
  end)

  it("answers a repeated read from its cache: counted, fresh after an upload, and faults still apply", function()
    local name = "cached-pkg"
    local v1 = reg.build_dists(dir, { name, "1.0" })[1]
    local v2 = reg.build_dists(dir, { name, "2.0" })[1]
    assert.are.equal(0, twine(server, { v1 }).code)
    local first, doc1 = simple_json(server, name)
    assert.are.equal("MISS", first.headers["x-cache"])
    local again, doc2 = simple_json(server, name)  -- the same read: from the cache
    assert.are.equal("HIT", again.headers["x-cache"])
    assert.are.equal(200, again.status)
    assert.are.same(doc1, doc2)
    assert.are.equal(first.headers["content-length"], again.headers["content-length"])
    assert.is_truthy(again.headers.date)
    -- an upload empties the cache: the next read shows the new file
    assert.are.equal(0, twine(server, { v2 }).code)
    local fresh, doc3 = simple_json(server, name)
    assert.are.equal("MISS", fresh.headers["x-cache"])
    assert.are.same({ "1.0", "2.0" }, doc3.versions)
    assert.are.equal(2, #doc3.files)
    -- an injected failure answers a read that the cache holds
    simple_json(server, name)
    server.fail({ status = 503, count = 1, prefix = "/simple/" .. name })
    local failed = assert(http.get(server.index .. name .. "/", { retry = false, progress = false,
      headers = { accept = "application/vnd.pypi.simple.v1+json" } }))
    assert.are.equal(503, failed.status)
    -- every read is in the log, cached or not
    local log = server.stats().log
    local reads = 0
    for _, line in ipairs(log) do
      if line:find("GET /simple/" .. name .. "/ ", 1, true) then reads = reads + 1 end
    end
    assert.are.equal(5, reads)
    assert.are.equal("GET /simple/" .. name .. "/ 503", log[#log])
  end)
end)

describe("pypi_server.py --warehouse (duplicates answered as pypi.org does)", function()
  local server, dir

  setup(function()
    server = reg.pypi({ warehouse = true })
    dir = assert(fs.tmpdir("relua-pypi-spec-"))
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("accepts an identical re-upload (200), and twine --skip-existing skips different bytes (400 File already exists)", function()
    local whl = reg.build_dists(dir, { "wh-pkg", "2.0" })[1]
    assert.are.equal(0, twine(server, { whl }).code)
    assert.are.equal(0, twine(server, { whl }).code)  -- identical: PyPI answers 200
    local d2 = fs.join(dir, "rebuilt")
    local changed = reg.build_dists(d2, { "wh-pkg", "2.0" }, { salt = "rebuilt" })[1]
    local plain = twine(server, { changed })
    assert.are_not.equal(0, plain.code)
    assert.matches("File already exists", plain.stdout .. plain.stderr, 1, true)
    local skip = twine(server, { changed }, { "--skip-existing" })
    assert.are.equal(0, skip.code, skip.stdout .. skip.stderr)
    assert.matches("Skipping", skip.stdout .. skip.stderr, 1, true)
    local _, doc = simple_json(server, "wh-pkg")
    assert.are.equal(1, #doc.files)
    assert.are.equal(fs.digest(whl, "sha256"), doc.files[1].hashes.sha256)
  end)
end)

describe("pypi_server.py going down and coming back (make demo's outage)", function()
  it("exits on the injected upload, refuses connections, and serves what it held once restarted on its storage", function()
    local dir = assert(fs.tmpdir("relua-pypi-spec-"))
    local storage = fs.join(dir, "storage")
    local server = reg.pypi({ storage = storage })
    local ok, e = pcall(function()
      local whl = reg.build_dists(dir, { "down-pkg", "1.0" })[1]
      local sdist = reg.build_dists(dir, { "down-pkg", "1.0" }, { sdist = true })[1]
      server.fail({ action = "exit", prefix = "/legacy/", count = 1, skip = 1 })
      assert.are.equal(0, twine(server, { whl }).code)
      assert.are_not.equal(0, twine(server, { sdist }).code)
      local resp, msg = http.get(server.index, { retry = false, progress = false })
      assert.is_nil(resp)
      assert.matches("connection refused", msg, 1, true)
      local port, password = server.port, server.password
      server.stop()
      server = reg.pypi({ storage = storage, port = port, password = password })
      assert.are.equal(port, server.port)
      local _, doc = simple_json(server, "down-pkg")
      assert.are.same({ "down_pkg-1.0-py3-none-any.whl" }, (function()
        local t = {}
        for i, f in ipairs(doc.files) do t[i] = f.filename end
        return t
      end)())
      assert.are.equal(0, twine(server, { sdist }).code)
    end)
    server.stop()
    fs.remove(dir, { recursive = true })
    if not ok then error(e, 0) end
  end)
end)
