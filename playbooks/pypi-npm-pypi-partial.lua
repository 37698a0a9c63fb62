-- recipes/pypi-npm.lua: the pypi-publish phase failed (the index was down, refused an
-- upload, timed out) after npm was published: some PyPI files may be out, and they are
-- immutable. Nothing is undone and nothing is rebuilt: the re-run looks at the index, skips
-- the files already there (identical: skipped_existing) and uploads the rest.
return {
  id = "pypi-npm-pypi-partial",
  title = "PyPI partly published (npm is out): re-run fills the gaps",
  symptom = { phase = "pypi-publish" },
  detect = {
    { name = "npm has the whole release", check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        return ctx.recipe._pn.complete(ctx.state, "npm")
      end },
    { name = "no PyPI file holds other bytes (that is a bump)", check = function(ctx)
        return ctx.code ~= "immutable", ctx.code == "immutable" and "the version is burned" or "no"
      end },
  },
  root_cause = [[
The upload to PyPI did not complete: the index was unreachable or refused a request. npm
(published first, as it has no skip-existing) already has this version. Files that reached
PyPI are immutable: never rebuild and overwrite them. The same tag gives byte-identical
builds, so a re-run skips what is there and uploads what is missing.]],
  fix = {
    describe = "nothing to change: once the index answers, the re-run skips the files already on PyPI and uploads the rest",
    run = function(ctx) ctx.recipe._pn.log_gaps(ctx, "pypi", "file(s)") end,
    bootstrap_change = "keep npm before PyPI and publish PyPI through relua.publish (skip-existing by content)",
  },
  verify = {
    { name = "the PyPI index answers", check = function(ctx)
        local pn = ctx.recipe._pn
        return pn.answers(pn.config.pypi_url, "the PyPI index")
      end },
  },
  resume = "pypi-publish",
  tags = { "pypi-npm", "publish", "pypi" },
}
