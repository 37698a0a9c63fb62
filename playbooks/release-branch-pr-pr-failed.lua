-- recipes/release-branch-pr.lua, scenario D of its runbook: the release is out (tag, PyPI,
-- the forge release) but the pull request back to main was not made (the forge refused or
-- was down). Find it or open it: the pull-request phase is find-or-open, so a pull request
-- the failed call made after all, or one opened by hand, is found and never opened twice.
local function bp_of(ctx)
  if not (ctx.recipe and ctx.recipe._bp) then return nil, "not a release-branch-pr release" end
  return ctx.recipe._bp.of(ctx)
end

return {
  id = "release-branch-pr-pr-failed",
  title = "Released, but the pull request to main failed: find or open it",
  symptom = { phase = "pull-request" },
  detect = {
    { name = "the release is out: the tag, PyPI, the forge release", check = function(ctx)
        local bp, why = bp_of(ctx)
        if not bp then return false, why end
        local inv = bp.inventory(ctx.state.VERSION)
        local ok = inv.tag == ctx.state.BUMP_SHA and inv.pypi == "identical" and inv.release
        return ok and true or false, bp.row(inv)
      end },
  },
  root_cause = [[
Creating the pull request failed: the token lacks "pull-requests: write", the forge was down
or rate limited, or the branch was gone. The release itself (tag, PyPI, forge release) is
complete; only the pull request that brings the version back to main is missing.]],
  fix = {
    describe = "look for the pull request (head: the release branch, base: main); make sure the branch is on the remote; the re-run finds or opens it",
    run = function(ctx)
      local bp = ctx.recipe._bp
      local cfg = bp.config
      local branch = bp.branch_of(ctx.state.VERSION)
      local repo <close> = bp.checkout()
      if not bp.remote_refs(repo)["refs/heads/" .. branch] then
        -- the branch is gone from the remote: back, at the release commit (the tag's)
        bp.on_branch(ctx, repo, branch, ctx.state.BUMP_SHA)
        bp.push_branch(ctx, repo, branch, "back, at the release commit")
      end
      local c, why = bp.forge_client()
      if not c then error(why, 0) end
      local ok, pr = pcall(c.find_pull_request, c, branch, cfg.base)
      if ok and pr then
        ctx:log(string.format("pull request #%s from %s into %s is already open: the re-run records it", tostring(pr.number), branch, cfg.base))
      elseif ok then
        ctx:log(string.format("no pull request from %s into %s yet: the re-run opens it", branch, cfg.base))
      else
        ctx:log("the forge could not be asked (" .. (type(pr) == "table" and tostring(pr.message) or tostring(pr)) .. "): verify checks it")
      end
    end,
    bootstrap_change = "a forge token with pull-requests: write (pre-flight probes the forge with it)",
  },
  verify = {
    { name = "the forge accepts the token", check = function(ctx)
        local c, why = ctx.recipe._bp.forge_client()
        if not c then return false, why end
        local ok, user = pcall(c.user, c)
        if not ok then return false, type(user) == "table" and user.message or tostring(user) end
        return true, "the forge answers for " .. tostring(type(user) == "table" and user.login or "the token")
      end },
  },
  tags = { "release-branch-pr", "forge", "pull-request" },
}
