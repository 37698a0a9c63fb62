-- recipes/pypi-npm.lua: the release is out (tag, npm, PyPI, the forge release) but the
-- finalize follow-up failed: the branch did not get its X.Y.Z+dev commit (the push was
-- refused: branch protection, a hook, the remote down). The release itself is fine.
return {
  id = "pypi-npm-finalize",
  title = "Released; finalize (the +dev bump) failed",
  symptom = { phase = "finalize" },
  detect = {
    { name = "the release is out: the tag on the remote, npm and PyPI complete", check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        local pn = ctx.recipe._pn
        local repo <close> = pn.checkout()
        local ok, at = pcall(pn.remote_tag, repo, ctx.state.TAG or "")
        if not ok or not at then return false, "the tag " .. tostring(ctx.state.TAG) .. " is not on the remote" end
        for _, t in ipairs({ "npm", "pypi" }) do
          local done, why = pn.complete(ctx.state, t)
          if not done then return false, why end
        end
        return true, tostring(ctx.state.TAG) .. " is out on npm and PyPI"
      end },
  },
  root_cause = [[
The release succeeded; only the follow-up that moves the branch to X.Y.Z+dev failed, most
often because the push to the branch was refused (branch protection, a declining hook,
credentials that may push tags but not the branch) or the remote was down.]],
  fix = {
    describe = "nothing to undo: once the remote accepts the push, finalize runs again (it commits on the branch as it is then)",
    run = function(ctx)
      ctx:log(string.format("%s is released; the branch gets %s%s on the re-run", tostring(ctx.state.TAG),
        tostring(ctx.state.VERSION), ctx.recipe._pn.config.dev_suffix))
    end,
    bootstrap_change = "let the release bot push to the branch (or bypass the protection for it)",
  },
  verify = {
    { name = "the remote answers", check = function(ctx)
        local pn = ctx.recipe._pn
        local repo <close> = pn.checkout()
        local ok, why = pcall(pn.remote_head, repo)
        if not ok then return false, type(why) == "table" and why.message or tostring(why) end
        return true, pn.config.remote .. "/" .. pn.config.branch .. " at " .. tostring(why):sub(1, 12)
      end },
  },
  resume = "finalize",
  tags = { "pypi-npm", "finalize", "git" },
}
