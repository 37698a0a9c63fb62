-- recipes/pypi-npm.lua: the packages are out on npm and PyPI but the forge release failed
-- (a token without the scope, the forge down). The forge release is get-or-create and its
-- assets verify-or-publish: the re-run finds what exists and adds only what is missing.
return {
  id = "pypi-npm-no-forge-release",
  title = "Published, but no forge release",
  symptom = { phase = "forge-release" },
  detect = {
    { name = "npm has the whole release", check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        return ctx.recipe._pn.complete(ctx.state, "npm")
      end },
    { name = "PyPI has the whole release", check = function(ctx) return ctx.recipe._pn.complete(ctx.state, "pypi") end },
  },
  root_cause = [[
The packages are published (immutable, nothing to redo); only the forge release of the tag
is missing or incomplete. A 401/403 means the forge token is missing, revoked or lacks
write access to the repository's contents; a 5xx or a timeout is the forge itself.]],
  fix = {
    describe = "nothing to undo: once the forge accepts the token, the re-run creates (or finds) the release and adds the missing assets",
    run = function(ctx)
      ctx:log("the packages are out; the forge release of " .. tostring(ctx.state.TAG) .. " is made on the re-run")
    end,
    bootstrap_change = "a forge token with contents: write on the repository (checked by pre-flight)",
  },
  verify = {
    { name = "the forge accepts the token", check = function(ctx)
        local c, why = ctx.recipe._pn.forge_client()
        if not c then return false, why end
        local ok, user = pcall(c.user, c)
        if not ok then return false, type(user) == "table" and user.message or tostring(user) end
        return true, "the forge answers for " .. tostring(type(user) == "table" and user.login or "the token")
      end },
  },
  resume = "forge-release",
  tags = { "pypi-npm", "forge" },
}
