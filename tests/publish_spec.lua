-- relua.publish, the one verify-or-publish core, through the PyPI adapter against the
-- test index (tests/support/pypi_server.py) with faults injected at each stage.
local reg = require "support.registries"
local publish = require "relua.publish"
local pypi = require "relua.registry.pypi"
local fs = require "relua.fs"

local log_level
setup(function() log_level = require("relua.log").level("error") end)
teardown(function() require("relua.log").level(log_level) end)

local function uploads(server) return server.uploads() end

describe("relua.publish", function()
  local server, dir, opts

  setup(function()
    server = reg.pypi()
    dir = assert(fs.tmpdir("relua-publish-"))
    opts = { url = server.legacy, user = server.user, password = server.password, timeout = 30,
             confirm_timeout = 2, retry = false }
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("says published for its own upload that lands late (answer lost, not yet visible, then 'exists')", function()
    local whl = reg.build_dists(fs.join(dir, "late"), { "Late.Pkg", "1.0" })[1]
    server.fail({ action = "reset_after", prefix = "/legacy/", count = 1 })
    server.fail({ status = 404, prefix = "/simple/late-pkg/", count = 2 })
    server.fail({ status = 404, prefix = "/pypi/late-pkg/", count = 2 })
    local r = pypi.publish(whl, opts)
    assert.are.equal("published", r.status)
    assert.are.same({ "Late_Pkg-1.0-py3-none-any.whl" }, server.files())
  end)

  it("says the upload may have landed when the answer is lost and the index cannot be read", function()
    local whl = reg.build_dists(fs.join(dir, "lost"), { "Lost.Pkg", "1.0" })[1]
    server.fail({ action = "reset_after", prefix = "/legacy/", count = 1 })
    server.fail({ status = 503, prefix = "/simple/lost-pkg/", count = 50, skip = 1 })
    server.fail({ status = 503, prefix = "/pypi/lost-pkg/", count = 50, skip = 1 })
    local o = setmetatable({ tries = 1 }, { __index = opts })
    local sent = {}
    o.on_sent = function(label) sent[label] = true end
    local ok, e = pcall(pypi.publish, whl, o)
    assert.is_false(ok)
    assert.are.equal("maybe_landed", e.code)
    assert.matches("may have landed: re-run to check", e.message, 1, true)
    assert.is_true(sent["Lost_Pkg-1.0-py3-none-any.whl"])
    -- drain the injected failures, then a re-run that knows it sent the file says published
    for _ = 1, 60 do
      local p = pypi.project("lost-pkg", { index = server.index, retry = false, api = "simple" })
      if p and p.exists then break end
    end
    for _ = 1, 60 do
      local p = pypi.project("lost-pkg", { index = server.index, retry = false, api = "json" })
      if p and p.exists then break end
    end
    local before = uploads(server)
    local r = pypi.publish(whl, setmetatable({ sent = sent }, { __index = opts }))
    assert.are.equal("published", r.status)
    assert.are.equal(before, uploads(server), "the re-run sent nothing")
  end)

  it("retries through Retry-After given as an HTTP date", function()
    local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2)
    local d = publish.delay(1, { headers = { ["retry-after"] = when } })
    assert.is_true(d >= 0 and d <= 3, "delay " .. d)
    assert.is_true(publish.delay(1, { headers = { ["retry-after"] = "1" } }) == 1)
    local whl = reg.build_dists(fs.join(dir, "ra"), { "Ra.Pkg", "1.0" })[1]
    server.fail({ status = 503, prefix = "/legacy/", count = 1, retry_after = 0 })
    assert.are.equal("published", pypi.publish(whl, opts).status)
  end)
end)

describe("relua.publish: unknown is not different", function()
  local server, dir, opts

  setup(function()
    server = reg.pypi({ no_hashes = true })
    dir = assert(fs.tmpdir("relua-publish-nh-"))
    opts = { url = server.legacy, user = server.user, password = server.password, timeout = 30,
             confirm_timeout = 2, retry = false }
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("an index without digests: a failed download is unverified (retried), never immutable", function()
    local whl = reg.build_dists(fs.join(dir, "a"), { "Nh.Pkg", "1.0" })[1]
    assert.are.equal("published", pypi.publish(whl, opts).status)
    local before = uploads(server)
    server.fail({ status = 404, prefix = "/files/", count = 3 })
    local ok, e = pcall(pypi.publish, whl, opts)
    assert.is_false(ok)
    assert.are.equal("unverified", e.code)
    assert.matches("could not be read", e.message, 1, true)
    assert.not_matches("bump", e.hint, 1, true)
    -- one failed download, then it reads: verified identical, nothing sent
    server.fail({ status = 404, prefix = "/files/", count = 1 })
    assert.are.equal("skipped_existing", pypi.publish(whl, opts).status)
    assert.are.equal(before, uploads(server))
    -- other bytes are still found different by download
    local rebuilt = reg.build_dists(fs.join(dir, "b"), { "Nh.Pkg", "1.0" }, { salt = "b" })[1]
    local ok2, e2 = pcall(pypi.publish, rebuilt, opts)
    assert.is_false(ok2)
    assert.are.equal("immutable", e2.code)
    assert.are.equal(before, uploads(server))
  end)

  it("a target whose copy cannot be read is `unverified`: a fallback's warning, a primary's failure, never immutable", function()
    local targets = require "relua.publish.targets"
    local whl = reg.build_dists(fs.join(dir, "t"), { "Nh.Tgt", "1.0" })[1]
    assert.are.equal("published", pypi.publish(whl, opts).status)
    local before = uploads(server)
    server.fail({ status = 404, prefix = "/files/", count = 1000 })  -- the last test here
    local o = { verify_tries = 2 }
    for k, v in pairs(opts) do o[k] = v end
    local T = { { name = "nh", role = "fallback", adapter = "pypi", artifacts = { whl }, opts = o } }
    local rec = targets.publish(nil, T)
    assert.are.equal("unverified", rec.nh.results[fs.basename(whl)].status)
    assert.matches("could not be read", rec.nh.results[fs.basename(whl)].detail, 1, true)
    assert.are.same({ "nh" }, targets.warnings(rec))
    T[1].role = "primary"
    local ok, e = pcall(targets.publish, nil, T)
    assert.is_false(ok)
    assert.are.equal("unverified", e.code)
    assert.are.equal(before, uploads(server))
  end)
end)

describe("relua.publish against a registry that accepts and never answers", function()
  local proc = require "relua.proc"
  local handle, port, dir

  setup(function()
    dir = assert(fs.tmpdir("relua-publish-hang-"))
    local pf = fs.join(dir, "port")
    handle = assert(proc.spawn({ "python3", "-c", [[
import socket, sys, time, os
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
end = time.time() + 120
while time.time() < end:
    s.settimeout(1)
    try:
        c, _ = s.accept(); held.append(c)   # accepted, read nothing, never answered
    except socket.timeout:
        pass
]], pf }, { capture = false }))
    for _ = 1, 100 do
      port = fs.read(pf)
      if port then break end
      proc.sleep(0.05)
    end
    assert(port, "the hanging server did not start")
  end)

  teardown(function()
    if handle then handle:kill("KILL"); handle:close() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("gives up within the publish's bounds (stall timeout, deadline) and says the index is unreachable", function()
    local whl = reg.build_dists(fs.join(dir, "w"), { "Hang.Pkg", "1.0" })[1]
    local ok, e = pcall(pypi.publish, whl, { url = "http://127.0.0.1:" .. port .. "/legacy/", password = "x",
      retry = false, stall_timeout = 1, deadline = 3 })
    assert.is_false(ok)
    assert.are.equal("unreachable", e.code)
    assert.matches("127.0.0.1:" .. port, e.message, 1, true)
  end)
end)
