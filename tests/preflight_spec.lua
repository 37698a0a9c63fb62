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
