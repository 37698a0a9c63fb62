-- recipes/pypi-npm.lua: a registry already holds other bytes for the version (published
-- from other content: by hand, or before the tag was moved). Published versions are
-- immutable: the content cannot be "fixed and re-published" as the same version. The fix
-- moves this ticket to the next version (the burned one is kept in the state as BURNED),
-- and the release runs again from the gate, from the branch's head.
local function next_version(ctx)
  local pn = ctx.recipe._pn
  local semver = require "relua.semver"
  local repo <close> = pn.checkout()
  local last = pn.last_tag_version(repo)
  local v = ctx.state.VERSION
  if not last or (v and semver.compare(v, last) > 0) then last = v end
  local level = pn.config.bump
  if level ~= "minor" and level ~= "major" then level = "patch" end
  return semver.bump(semver.parse(last), level):tostring()
end

return {
  id = "pypi-npm-bump",
  title = "The version is burned with other content: bump the version",
  symptom = { code = "immutable" },
  detect = {
    { name = "a registry holds other bytes for this version", check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        local burned = ctx.recipe._pn.burned()
        if #burned == 0 then return false, "no registry holds other bytes now" end
        return true, table.concat(burned, "; ")
      end },
  },
  root_cause = [[
Published versions are immutable. A registry already has this version with other bytes,
so the content of this release differs from what shipped under its number. Retrying cannot
help and overwriting is impossible (npm unpublish is discouraged and breaks installs): the
change ships as a new version.]],
  fix = {
    describe = function(ctx)
      return string.format("release this ticket as %s instead of the burned %s (kept as BURNED), from the branch's head",
        next_version(ctx), tostring(ctx.state.VERSION))
    end,
    run = function(ctx)
      local new = next_version(ctx)
      local burned = type(ctx.state.BURNED) == "table" and ctx.state.BURNED or {}
      burned[#burned + 1] = { version = ctx.state.VERSION, tag = ctx.state.TAG, publish = ctx.state.publish }
      ctx.state.BURNED = burned
      ctx.state.publish = nil
      ctx.state.ARTIFACTS = nil
      ctx.state.RELEASE_SHA = nil
      ctx.state["release-notes"] = nil
      ctx.state.TAG = nil
      ctx.state.VERSION = new
      ctx:log(string.format("the ticket now releases %s (%s is burned)", new, tostring(burned[#burned].version)))
    end,
    bootstrap_change = "never publish a release version by hand; change content only through a new version",
  },
  verify = {
    { name = "the new version's tag is free on the remote", check = function(ctx)
        local pn = ctx.recipe._pn
        local repo <close> = pn.checkout()
        local tag = pn.config.prefix .. tostring(ctx.state.VERSION)
        local at = pn.remote_tag(repo, tag)
        return at == nil, at and (tag .. " exists at " .. at:sub(1, 12)) or (tag .. " is free")
      end },
  },
  resume = "gate",
  tags = { "pypi-npm", "publish", "version" },
}
