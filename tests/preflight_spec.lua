-- relua.preflight: checks before the first phase, one pass/fail list, exit 2 on a failure;
-- a re-run is not blocked by what the first run of the ticket did.
local S = require "support.release"
local git = require "relua.git"

local AUTHOR = { name = "Spec", email = "spec@example.invalid" }

local RECIPE = [[
local pf = require "relua.preflight"
local git = require "relua.git"
return { name = "pf",
  preflight = {
    pf.secrets({ os.getenv("SECRET_NAME") or "DEPLOY_TOKEN" }, { project = "acme" }),
    pf.clean_tree("."),
    pf.on_branch(os.getenv("BRANCH")),
    pf.no_conflicting_tag(function(ctx) return "v" .. ctx.ticket end),
    pf.no_orphan_branch("release/*", { allow = function(ctx) return "release/" .. ctx.ticket end }),
  },
  phases = {
    { name = "tag", run = function(r)
        local repo <close> = assert(git.open("."))
        assert(repo:tag("v" .. r.ticket, "HEAD", { message = "release " .. r.ticket }))
      end },
    { name = "finish", run = function(r) if os.getenv("BOOM") then error("boom") end end },
  } }
]]

describe("relua.preflight", function()
  after_each(function() S.cleanup() end)

  -- A sandbox that is a git repository with one commit and the recipe (ignored by git).
  local function world()
    local s = S.sandbox()
    local repo = assert(git.init(s.dir))
    s:write(".gitignore", "recipe.lua\n.relua/\n")
    s:write("README", "v1\n")
    assert(repo:commit("v1", { ".gitignore", "README" }, { author = AUTHOR }))
    local branch = repo:head().branch
    repo:close()
    s:write("recipe.lua", RECIPE)
    return s, branch
  end

  it("passes and runs the release when every check passes", function()
    local s, branch = world()
    local r = s:relua({ "recipe.lua", "1.0" }, { DEPLOY_TOKEN = "tok-123456", BRANCH = branch })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("pre-flight:\n  [pass] secrets present: DEPLOY_TOKEN\n  [pass] working tree clean", r.stdout, 1, true)
    assert.matches("[pass] no conflicting tag: v1.0 is free", r.stdout, 1, true)
    assert.matches("release 1.0 done", r.stdout, 1, true)
  end)

  it("reports every failure in one list and refuses the run (exit 2): nothing runs", function()
    local s, branch = world()
    local repo = assert(git.open(s.dir))
    local first = repo:head().id
    s:write("README", "v2\n")
    assert(repo:commit("v2", { "README" }, { author = AUTHOR }))
    assert(repo:tag("v2.0", first, { message = "elsewhere" }))
    assert(repo:branch_create("release/1.9", first))
    repo:close()
    s:write("README", "dirty\n")
    local r = s:relua({ "recipe.lua", "2.0" }, { DEPLOY_TOKEN = false, BRANCH = "main-not-" .. branch })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("[FAIL] secrets present: not set: DEPLOY_TOKEN", r.stdout, 1, true)
    assert.matches("[FAIL] working tree clean: Working tree is dirty", r.stdout, 1, true)
    assert.matches("[FAIL] on branch main-not-" .. branch, r.stdout, 1, true)
    assert.matches("[FAIL] no conflicting tag: v2.0 exists at " .. first:sub(1, 12), r.stdout, 1, true)
    assert.matches("[FAIL] no orphan release branch: left over: release/1.9", r.stdout, 1, true)
    assert.matches("pre-flight failed: secrets present, working tree clean", r.stderr, 1, true)
    local st = s:state("2.0")
    assert.are.equal("pending", st.phases[1].status)
    local log = table.concat(s:log_lines("2.0"), "\n")
    assert.matches("event=preflight check=\"secrets present\" result=fail", log, 1, true)
  end)

  it("refuses secret names the forges reserve, proposing one", function()
    local s, branch = world()
    local r = s:relua({ "recipe.lua", "1.0" }, { SECRET_NAME = "GITEA_PYPI_TOKEN", GITEA_PYPI_TOKEN = "x-123456", BRANCH = branch })
    assert.are.equal(2, r.code)
    assert.matches("GITEA_PYPI_TOKEN starts with GITEA_", r.stdout, 1, true)
    assert.matches("ACME_GITEA_PYPI_TOKEN", r.stdout, 1, true)
  end)

  it("does not block a re-run on what the first run did (its own tag)", function()
    local s, branch = world()
    local env = { DEPLOY_TOKEN = "tok-123456", BRANCH = branch, BOOM = "1" }
    local r = s:relua({ "recipe.lua", "3.0" }, env)
    assert.are.equal(1, r.code)
    assert.matches("phase finish failed", r.stderr, 1, true)
    env.BOOM = false
    r = s:relua({ "recipe.lua", "3.0" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("[pass] no conflicting tag: v3.0 already points at", r.stdout, 1, true)
  end)
end)

describe("relua.preflight against the test forge", function()
  local reg = require "support.registries"
  local server

  setup(function() server = reg.forge() end)
  teardown(function() if server then server.stop() end end)
  after_each(function() S.cleanup() end)

  it("ci_green refuses a commit whose CI failed, naming the checks; an override passes and is logged with who and why", function()
    local s = S.sandbox()
    local repo = assert(git.init(s.dir))
    s:write(".gitignore", "recipe.lua\n.relua/\n")
    assert(repo:commit("v1", { ".gitignore" }, { author = AUTHOR }))
    local sha = repo:head().id
    repo:close()
    server.setup({ repo = "acme/lib",
      statuses = { [sha] = { { context = "ci/lint", state = "success" } } },
      check_runs = { [sha] = { { name = "test (3.12)", status = "completed", conclusion = "failure" } } } })
    s:write("recipe.lua", [[
      local pf = require "relua.preflight"
      return { preflight = { pf.ci_green({ repo = "acme/lib" }) },
               phases = { { name = "go", run = function() end } } }
    ]])
    local env = { GITHUB_API_URL = server.api, GITHUB_TOKEN = server.token, GH_TOKEN = false,
                  RELUA_CI_OVERRIDE = false, GITHUB_ACTOR = "ada" }
    local r = s:relua({ "recipe.lua", "1.0" }, env)
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("[FAIL] CI green on the forge: failing: test (3.12) (failure)", r.stdout, 1, true)
    assert.matches("set RELUA_CI_OVERRIDE to the reason", r.stdout, 1, true)
    env.RELUA_CI_OVERRIDE = "flaky runner, re-run green locally"
    r = s:relua({ "recipe.lua", "1.0" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("[pass] CI green on the forge: overridden by ada (flaky runner, re-run green locally)", r.stdout, 1, true)
    local log = table.concat(s:log_lines("1.0"), "\n")
    assert.matches('event=ci%-override [^\n]*who=ada msg="flaky runner, re%-run green locally"', log)
    assert.not_matches(server.token, r.stdout .. r.stderr .. log, 1, true)
  end)

  it("targets refuses a primary whose forge refuses its token (a read that needs it), naming the variable, never the value", function()
    local s = S.sandbox()
    s:write("asset.bin", "the asset\n")
    s:write("recipe.lua", [[
      local pf = require "relua.preflight"
      local T = { { name = "github", role = "primary", adapter = "forge", artifacts = { "asset.bin" },
        opts = { api = os.getenv("API"), repo = "acme/tool", tag = "v1.0", release_opts = { notes = false } },
        secrets = { token = "ACME_FORGE_TOKEN" } } }
      return { preflight = pf.targets(T),
               phases = { { name = "publish", run = function(r) require("relua.publish.targets").publish(r, T) end } } }
    ]])
    local planted = "ghp_plantedWrongToken0123456789"
    local r = s:relua({ "recipe.lua", "1.0" }, { API = server.api, ACME_FORGE_TOKEN = planted })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("[FAIL] registries reachable with their credentials: github: forge: GET /user: HTTP 401: "
      .. "Bad credentials (token from $ACME_FORGE_TOKEN)", r.stdout, 1, true)
    assert.matches("pre-flight failed: registries reachable with their credentials", r.stderr, 1, true)
    assert.not_matches(planted, r.stdout .. r.stderr .. table.concat(s:log_lines("1.0"), "\n"), 1, true)
    assert.are.equal(0, server.stats().uploads)
    assert.are.equal("pending", s:state("1.0").phases[1].status)
    -- the right token: pre-flight passes and the asset is published once
    r = s:relua({ "recipe.lua", "1.0" }, { API = server.api, ACME_FORGE_TOKEN = server.token })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("[pass] registries reachable with their credentials", r.stdout, 1, true)
    assert.are.equal(1, server.stats().uploads)
  end)
end)
