-- recipes/release-branch-pr.lua, scenario C of its runbook: PyPI already holds the version
-- with other bytes (published by hand, or from other content). A PyPI file is immutable
-- and a version cannot be deleted (only yanked): the release moves to the next version.
-- Nothing was sent to PyPI. This ticket's own tag and branch of the burned version (nothing
-- was published from them) are taken back, and the release starts again from main's head.
-- (The version there with identical bytes is no failure: the pypi-upload phase reports it
-- skipped_existing and the release goes on.)
local function bp_of(ctx)
  if not (ctx.recipe and ctx.recipe._bp) then return nil, "not a release-branch-pr release" end
  return ctx.recipe._bp.of(ctx)
end

local function next_version(ctx)
  local bp = ctx.recipe._bp
  local semver = require "relua.semver"
  local repo <close> = bp.checkout()
  local tags = {}
  for name in pairs(bp.remote_refs(repo)) do tags[#tags + 1] = name:match("^refs/tags/(.+)$") end
  tags[#tags + 1] = bp.tag_of(ctx.state.VERSION)
  local _, last = semver.max(tags, { prefix = bp.config.prefix })
  local level = bp.config.bump
  if level ~= "minor" and level ~= "major" then level = "patch" end
  return semver.bump(last, level):tostring()
end

return {
  id = "release-branch-pr-bump",
  title = "The version is on PyPI with other content: bump the version",
  symptom = { phase = "pypi-upload", code = "immutable" },
  detect = {
    { name = "PyPI holds other bytes for this version", check = function(ctx)
        local bp, why = bp_of(ctx)
        if not bp then return false, why end
        local inv = bp.inventory(ctx.state.VERSION)
        return inv.pypi == "different", "PyPI: " .. tostring(inv.pypi) .. " for " .. ctx.state.VERSION
      end },
  },
  root_cause = [[
Published versions are immutable: PyPI has this version already, from other content. It
cannot be fixed and published again under the same number (a PyPI version cannot be
deleted, only yanked): the release ships as the next version.]],
  fix = {
    describe = function(ctx)
      return string.format("take back this ticket's tag and branch of %s (nothing was published from them) and release %s " ..
        "instead, from main's head (the burned version is kept in the state as BURNED)", tostring(ctx.state.VERSION), next_version(ctx))
    end,
    run = function(ctx)
      local new = next_version(ctx)
      ctx.recipe._bp.drop(ctx)
      local burned = type(ctx.state.BURNED) == "table" and ctx.state.BURNED or {}
      burned[#burned + 1] = { version = ctx.state.VERSION, tag = ctx.state.TAG, commit = ctx.state.BUMP_SHA }
      ctx.state.BURNED = burned
      for _, k in ipairs({ "publish", "ARTIFACTS", "BUMP_SHA", "BRANCH_SHA", "BASE_SHA", "BRANCH", "TAG" }) do ctx.state[k] = nil end
      ctx.state.VERSION = new
      ctx:log(string.format("the ticket now releases %s (%s is burned on PyPI)", new, tostring(burned[#burned].version)))
    end,
    bootstrap_change = "never upload a release version by hand; change content only through a new version",
  },
  verify = {
    { name = "the new version's tag and branch are free on the remote", check = function(ctx)
        local bp = ctx.recipe._bp
        local repo <close> = bp.checkout()
        local refs = bp.remote_refs(repo)
        local v = ctx.state.VERSION
        local taken = refs["refs/tags/" .. bp.tag_of(v)] and bp.tag_of(v) or refs["refs/heads/" .. bp.branch_of(v)] and bp.branch_of(v)
        return not taken, taken and (taken .. " exists") or (bp.tag_of(v) .. " and " .. bp.branch_of(v) .. " are free")
      end },
  },
  resume = "release-branch",
  tags = { "release-branch-pr", "publish", "pypi", "version" },
}
