-- The point of no return: once a phase with `irreversible = true` is done (or a phase has
-- published, marked through relua.release.noreturn), revert leaves it and everything before
-- it alone, and failure hints say "retry the same version, or release a new version".
local rs = require "support.release"

local RECIPE = [[
local noreturn = require "relua.release.noreturn"
local function mark(k) local f = assert(io.open("ran.txt", "a")) f:write(k, "\n") f:close() end
local function broken(name) return io.open("broken-" .. name) ~= nil end
return { name = "pkg", phases = {
  { name = "build", run = function() mark("build") end, revert = function() mark("revert-build") end },
  { name = "publish", irreversible = true, run = function(r)
      if io.open("half-publish") then
        noreturn.published("published pkg-1.0.tar.gz")  -- as the publish core does, without r
        error("the index went away after pkg-1.0.tar.gz")
      end
      mark("publish")
    end, revert = function() mark("revert-publish") end },
  { name = "release", run = function() if broken("release") then error("forge down") end mark("release") end,
    revert = function() mark("revert-release") end },
  { name = "finalize", followup = true, run = function() if broken("finalize") then error("push refused") end end },
} }
]]

local function env() return { RELUA_PLAYBOOKS = false, RELUA_STORE = false } end

describe("the point of no return", function()
  local sb
  before_each(function()
    sb = rs.sandbox()
    sb:write("recipe.lua", RECIPE)
  end)
  after_each(function() rs.cleanup() end)

  it("before it: a failure offers the roll back", function()
    sb:write("broken-release", "")
    sb:write("recipe2.lua", (RECIPE:gsub("irreversible = true, ", "")))
    local res = sb:relua({ "recipe2.lua", "1" }, env())
    assert.are.equal(1, res.code)
    assert.matches("release failed in phase release (rc=1). Resume: relua recipe2.lua 1 --from=release. Roll back: relua revert 1.", res.stderr, 1, true)
  end)

  it("after it: retry or a new version, and revert undoes only what came after", function()
    sb:write("broken-release", "")
    local res = sb:relua({ "recipe.lua", "1" }, env())
    assert.are.equal(1, res.code)
    assert.matches("past the point of no return (phase publish: irreversible)", res.stderr, 1, true)
    assert.matches("Retry the same version (it only fills gaps): relua recipe.lua 1 --from=release", res.stderr, 1, true)
    assert.matches("release a new version", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("Roll back", 1, true))
    local st = sb:relua({ "status", "1" }, env())
    assert.matches("past the point of no return: retry, or release a new version", st.stdout, 1, true)
    -- what a program and the REPL are offered next: no roll back either
    local js = require("relua.json").decode(sb:relua({ "status", "1", "--json" }, env()).stdout)
    assert.are.equal("relua recipe.lua 1 --from=release  (past the point of no return: retry, or release a new version)", js.next)
    local repl = sb:relua({ "-e", 'print(require("relua.repl").ticket("1"))' }, env())
    assert.matches("next: relua .-recipe%.lua 1 %-%-from=release  %(past the point of no return", repl.stdout)
    assert.is_nil(repl.stdout:find("revert", 1, true), repl.stdout)
    local rev = sb:relua({ "revert", "1" }, env())
    assert.are.equal(0, rev.code, rev.stdout .. rev.stderr)
    assert.matches("phase publish is past the point of no return", rev.stdout, 1, true)
    local c = sb:counts()
    assert.are.equal(1, c["revert-release"])
    assert.is_nil(c["revert-publish"])
    assert.is_nil(c["revert-build"])
    assert.are.same({ build = "done", publish = "done", release = "reverted", finalize = "pending" }, sb:statuses("1"))
    -- Nothing left that may be undone: refused (exit 3), nothing run.
    local again = sb:relua({ "revert", "1" }, env())
    assert.are.equal(3, again.code, again.stdout .. again.stderr)
    assert.matches("nothing can be undone: phase publish is past the point of no return", again.stderr, 1, true)
    assert.is_nil(sb:counts()["revert-publish"])
  end)

  it("on CI the annotation, the job summary and --json give the terminal's hints: no roll back", function()
    sb:write("broken-release", "")
    local e = env()
    e.GITHUB_ACTIONS, e.GITLAB_CI, e.GITHUB_STEP_SUMMARY = "true", false, sb:path("summary.md")
    local res = sb:relua({ "recipe.lua", "1" }, e)
    assert.are.equal(1, res.code)
    local retry = "Retry the same version (it only fills gaps): relua recipe.lua 1 --from=release."
    assert.matches(retry, res.stderr, 1, true)
    local annotation = res.stdout:match("::error title=[^\n]*")
    assert.matches("past the point of no return (phase publish: irreversible)", annotation, 1, true)
    assert.matches(retry, annotation, 1, true)
    local md = sb:read("summary.md")
    assert.matches("Retry the same version (it only fills gaps): `relua recipe.lua 1 --from=release`.", md, 1, true)
    assert.matches("release a new version", md, 1, true)
    for _, out in ipairs({ annotation, md }) do assert.is_nil(out:find("Roll back", 1, true)) end
    local j = require("relua.json").decode(sb:relua({ "recipe.lua", "1", "--json" }, e).stdout)
    assert.is_nil(j.revert)
    assert.are.equal("relua recipe.lua 1 --from=release", j.resume)
    assert.matches(retry, j.hints[1], 1, true)
    -- before the point of no return, all three still offer the roll back
    sb:write("recipe2.lua", (RECIPE:gsub("irreversible = true, ", "")))
    res = sb:relua({ "recipe2.lua", "2" }, e)
    assert.matches("Roll back: relua revert 2.", res.stdout:match("::error title=[^\n]*"), 1, true)
    assert.matches("Roll back: `relua revert 2`.", sb:read("summary.md"), 1, true)
  end)

  it("a follow-up that fails after it reads 'released; follow-up failed'", function()
    sb:write("broken-finalize", "")
    local res = sb:relua({ "recipe.lua", "1" }, env())
    assert.are.equal(1, res.code)
    assert.matches("released; follow-up failed in phase finalize (rc=1): the release itself is out", res.stderr, 1, true)
    assert.matches("Retry the follow-up: relua recipe.lua 1 --from=finalize", res.stderr, 1, true)
    assert.is_nil(res.stderr:find("release failed", 1, true))
  end)

  it("a phase that published is past it even though it failed", function()
    sb:write("half-publish", "")
    local res = sb:relua({ "recipe.lua", "1" }, env())
    assert.are.equal(1, res.code)
    assert.matches("past the point of no return (phase publish: published pkg-1.0.tar.gz)", res.stderr, 1, true)
    local rev = sb:relua({ "revert", "1" }, env())
    assert.are.equal(3, rev.code, rev.stdout .. rev.stderr)
    assert.is_nil(sb:counts()["revert-build"])
    -- The retry fills the gap and completes.
    os.remove(sb:path("half-publish"))
    assert.are.equal(0, sb:relua({ "recipe.lua", "1" }, env()).code)
  end)
end)
