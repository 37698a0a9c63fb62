-- relua.publish.targets: a release published to a primary and a fallback index (two real
-- test indexes on 127.0.0.1), run through the relua binary as an operator runs it.
local reg = require "support.registries"
local S = require "support.release"
local h = require "support.h"
local fs = require "relua.fs"
local json = require "relua.json"

local DOWN = "http://127.0.0.1:9/legacy/"   -- nothing listens there: connection refused

local RECIPE = [[
local targets = require "relua.publish.targets"
local function opts(url) return { url = url, user = "relua", timeout = 10, confirm_timeout = 2, retry = false, tries = 1 } end
local T = {
  { name = "gitea", role = "primary", adapter = "pypi", artifacts = os.getenv("DIST") .. "/*.whl",
    opts = opts(os.getenv("PRIMARY_URL")), secrets = { password = "PRIMARY_TOKEN" } },
  { name = "pypi", role = "fallback", adapter = "pypi", artifacts = os.getenv("DIST") .. "/*.whl",
    opts = opts(os.getenv("FALLBACK_URL")), secrets = { password = "FALLBACK_TOKEN" } },
}
return { name = "multi",
  preflight = os.getenv("PREFLIGHT") and { require("relua.preflight").targets(T) } or nil,
  phases = {
    { name = "build", run = function(r) end },
    { name = "publish", run = function(r) targets.publish(r, T) end },
  } }
]]

local function uploads(server) return server.uploads() end

describe("relua.publish.targets", function()
  local indexes, primary, fallback, dir, dist, names

  setup(function()
    indexes = reg.pypi_pair("relua-targets-")
    primary, fallback, dir = indexes.primary, indexes.fallback, indexes.dir
  end)

  teardown(function()
    if indexes then indexes.stop() end
    S.cleanup()
  end)

  local n = 0
  -- The stored files of a server for this test's project, sorted.
  local function stored(server) return server.files_of("Tgt" .. n .. "_") end
  -- A fresh pair of wheels (a new project per test) and a sandbox with the recipe.
  local function world()
    n = n + 1
    local name = "Tgt" .. n
    local wheels = reg.build_dists(fs.join(dir, "d" .. n), { name .. ".A", "1.0", name .. ".B", "1.0" })
    dist = fs.dirname(wheels[1])
    names = { fs.basename(wheels[1]), fs.basename(wheels[2]) }
    table.sort(names)
    local s = S.sandbox()
    s:write("recipe.lua", RECIPE)
    return s, wheels
  end

  local function env(extra)
    local e = { DIST = dist, PRIMARY_URL = primary.legacy, FALLBACK_URL = fallback.legacy,
                PRIMARY_TOKEN = primary.password, FALLBACK_TOKEN = fallback.password }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function has_all(server)
    local files = stored(server)
    for _, w in ipairs(names) do
      local found = false
      for _, f in ipairs(files) do if f == w then found = true end end
      if not found then return false end
    end
    return true
  end

  it("primary up, fallback down: done with warnings, and the summary shows the fallback", function()
    local s = world()
    local summary = fs.join(s.dir, "step-summary.md")
    local r = s:relua({ "recipe.lua", "1.0" }, env({ FALLBACK_URL = DOWN, GITHUB_STEP_SUMMARY = summary }))
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("done with warnings", r.stdout, 1, true)
    assert.matches("pypi%s+fallback%s+%S+%s+failed", r.stdout)
    assert.matches("gitea%s+primary%s+%S+%s+published", r.stdout)
    assert.is_true(has_all(primary))
    -- the phase that sent something is past the point of no return (relua.release.noreturn)
    assert.matches("^pypi: ", s:state("1.0").state["relua.no_return"].publish)
    local st = json.decode(s:relua({ "status", "1.0", "--json" }).stdout)
    assert.are.equal("done with warnings", st.status)
    -- the ticket itself carries them (checked by the ledger's shape check on every read)
    assert.are.equal("pypi", s:state("1.0").warnings[1].target)
    assert.are.equal("pypi", st.warnings[1].target)
    assert.are.equal("failed", st.warnings[1].status)
    -- the fallback's failure is a warning event in the audit log, with what failed
    local log = table.concat(s:log_lines("1.0"), "\n")
    assert.matches("event=warning artifact=" .. names[1]:gsub("%p", "%%%0") .. " status=failed target=pypi "
      .. "msg=\"[^\"]*127%.0%.0%.1:9[^\"]*connection refused", log)
    -- the summary's detail says what happened (the error), not only that it failed
    assert.matches("pypi%s+fallback%s+%S+%s+failed%s+[^\n]*127%.0%.0%.1:9", r.stdout)
    local status = s:relua({ "status", "1.0" }).stdout
    assert.matches("done with warnings", status, 1, true)
    assert.matches("publish:\n  target%s+role%s+artifact%s+status%s+detail\n", status)
    assert.matches("\n  pypi%s+fallback%s+" .. names[1]:gsub("%p", "%%%0") .. "%s+failed", status)
    -- the step summary holds a valid Markdown table
    local md = h.slurp(summary)
    local lines = {}
    for line in md:gmatch("[^\n]+") do if line:match("^|") then lines[#lines + 1] = line end end
    assert.are.equal("| target | role | artifact | status | detail |", lines[1])
    assert.are.equal("|---|---|---|---|---|", lines[2])
    assert.are.equal(6, #lines)  -- 2 targets x 2 wheels
    for i = 3, #lines do
      local cells = select(2, (" " .. lines[i]):gsub("[^\\]|", "%0"))
      assert.are.equal(6, cells, lines[i])
    end
    assert.matches("| pypi | fallback | " .. names[1] .. " | failed |", md, 1, true)
    local broken = s:state("1.0")
    broken.warnings = { "not an object" }
    h.spit(s.rel .. "/1.0.json", json.encode(broken))
    local bad = s:relua({ "status", "1.0" })
    assert.are.equal(2, bad.code)
    assert.matches("warning 1 is not an object", bad.stderr, 1, true)
  end)

  it("primary down, fallback up: the phase fails, nothing is sent anywhere; the re-run publishes only what is missing", function()
    local s, wheels = world()
    -- one wheel is already on the primary (an earlier partial release)
    local pypi = require "relua.registry.pypi"
    require("relua.log").level("error")
    pypi.publish(wheels[1], { url = primary.legacy, user = primary.user, password = primary.password, timeout = 10 })
    require("relua.log").level("info")
    local p0, f0 = uploads(primary), uploads(fallback)
    local r = s:relua({ "recipe.lua", "1.0" }, env({ PRIMARY_URL = DOWN }))
    assert.are.equal(1, r.code)
    assert.matches("target gitea (primary)", r.stderr, 1, true)
    assert.matches("nothing was sent to any target", r.stderr, 1, true)
    assert.are.equal(f0, uploads(fallback))
    assert.are.same({}, stored(fallback))
    -- the primary is back
    r = s:relua({ "recipe.lua", "1.0" }, env())
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(p0 + 1, uploads(primary), "only the missing wheel went to the primary")
    assert.are.equal(f0 + 2, uploads(fallback))
    assert.is_true(has_all(primary) and has_all(fallback))
    assert.matches("release 1.0 done: all 2 phases done", r.stdout, 1, true)
  end)

  it("a fallback with no token is skipped_no_token; the ticket ends done with warnings", function()
    local s = world()
    local r = s:relua({ "recipe.lua", "1.0" }, env({ FALLBACK_TOKEN = false }))
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("pypi%s+fallback%s+%S+%s+skipped_no_token%s+not set: FALLBACK_TOKEN", r.stdout)
    assert.are.same({}, stored(fallback))
    assert.are.equal("done with warnings", json.decode(s:relua({ "status", "1.0", "--json" }).stdout).status)
  end)

  it("a primary with no token is refused in pre-flight (exit 2): nothing is published", function()
    local s = world()
    local p0, f0 = uploads(primary), uploads(fallback)
    local r = s:relua({ "recipe.lua", "1.0" }, env({ PREFLIGHT = "1", PRIMARY_TOKEN = false }))
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("[FAIL] target secrets: gitea (primary): not set: PRIMARY_TOKEN", r.stdout, 1, true)
    assert.matches("pre-flight failed", r.stderr, 1, true)
    assert.are.equal(p0, uploads(primary))
    assert.are.equal(f0, uploads(fallback))
    assert.are.equal("pending", s:state("1.0").phases[1].status)
    -- with the token, pre-flight passes and the release goes through
    r = s:relua({ "recipe.lua", "1.0" }, env({ PREFLIGHT = "1" }))
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("[pass] version not burned", r.stdout, 1, true)
  end)

  it("a burned version on one target: nothing is sent anywhere, the error names the target and both digests", function()
    local s, wheels = world()
    local other = reg.build_dists(fs.join(dir, "other" .. n), { "Tgt" .. n .. ".B", "1.0" }, { salt = "x" })[1]
    local pypi = require "relua.registry.pypi"
    require("relua.log").level("error")
    pypi.publish(other, { url = fallback.legacy, user = fallback.user, password = fallback.password, timeout = 10 })
    require("relua.log").level("info")
    local p0, f0 = uploads(primary), uploads(fallback)
    local r = s:relua({ "recipe.lua", "1.0" }, env())
    assert.are.equal(1, r.code)
    assert.matches("target pypi:", r.stderr, 1, true)
    assert.matches(fs.digest(other, "sha256"), r.stderr, 1, true)
    assert.matches(fs.digest(wheels[2], "sha256"), r.stderr, 1, true)
    assert.matches("nothing was sent to any target", r.stderr, 1, true)
    assert.matches("pypi%s+fallback%s+" .. fs.basename(other):gsub("%p", "%%%0") .. "%s+immutable", r.stdout)
    assert.are.equal(p0, uploads(primary))
    assert.are.equal(f0, uploads(fallback))
  end)

  it("a look that raises: the target fails with that error as its reason, nothing sent", function()
    local s = world()
    s:write("raise.lua", [[
      local targets = require "relua.publish.targets"
      local adapter = { name = "x", inspect = function(p) return { path = p } end,
        label = function(a) return (a.path:match("[^/]+$")) end, where = function() return "the x registry" end,
        look = function() error({ code = "auth", message = "x: the token from $X_TOKEN was refused" }, 0) end }
      targets.publish(nil, { { name = "xreg", role = "primary", adapter = adapter, artifacts = os.getenv("DIST") .. "/*.whl" } })
    ]])
    local r = s:relua({ "raise.lua" }, env())
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("xreg%s+primary%s+%S+%s+failed%s+x: the token from %$X_TOKEN was refused", r.stdout)
    assert.matches("target xreg (primary): x: the token from $X_TOKEN was refused; nothing was sent to any target",
      r.stderr, 1, true)
  end)

  it("a re-run of a fully published release: every target skipped_existing, no upload sent", function()
    local s = world()
    assert.are.equal(0, s:relua({ "recipe.lua", "1.0" }, env()).code)
    local p0, f0 = uploads(primary), uploads(fallback)
    local r = s:relua({ "recipe.lua", "1.0-again" }, env())
    assert.are.equal(0, r.code, r.stderr)
    local _, skipped = r.stdout:gsub("skipped_existing", "")
    assert.are.equal(4, skipped)
    assert.are.equal(p0, uploads(primary))
    assert.are.equal(f0, uploads(fallback))
  end)
end)
