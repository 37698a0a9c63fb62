-- recipes/pypi-npm.lua: the npm-publish phase failed: some npm packages may be out (npm has
-- no skip-existing). PyPI runs after npm, so nothing is on PyPI. The re-run looks at the
-- registry, finds the packages already published (identical: skipped) and publishes only
-- the missing ones: no by-hand `npm publish` per package.
return {
  id = "pypi-npm-npm-partial",
  title = "npm partly published (PyPI not yet): re-run publishes only the missing packages",
  symptom = { phase = "npm-publish" },
  detect = {
    { name = "not a burned version (that is a bump)", quick = true, check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        return ctx.code ~= "immutable", ctx.code == "immutable" and "the version is burned" or "no other bytes found"
      end },
    { name = "nothing is on PyPI yet (it is gated on npm)", quick = true, check = function(ctx)
        local pub = type(ctx.state.publish) == "table" and ctx.state.publish or {}
        return pub.pypi == nil, pub.pypi and "this ticket published to PyPI already" or "no PyPI publish recorded"
      end },
  },
  root_cause = [[
Publishing to npm stopped part-way (the registry refused or dropped a request, a token
lacked a scope). npm cannot skip existing versions the way PyPI does, but relua's publish
core looks before it sends: packages already there with the same tarball are skipped, so
the re-run publishes only the missing ones. PyPI has not run (it is gated on npm): there is
nothing to undo there.]],
  fix = {
    describe = "nothing to change once the registry accepts the publish: the re-run publishes only the missing packages",
    run = function(ctx) ctx.recipe._pn.log_gaps(ctx, "npm", "package(s)") end,
    bootstrap_change = "an npm token with publish rights on every package of the release",
  },
  verify = {
    { name = "the npm registry answers", check = function(ctx)
        local pn = ctx.recipe._pn
        return pn.answers(pn.config.npm_registry, "the npm registry")
      end },
  },
  resume = "npm-publish",
  tags = { "pypi-npm", "publish", "npm" },
}
