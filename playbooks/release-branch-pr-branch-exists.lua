-- recipes/release-branch-pr.lua, scenario A of its runbook: the release branch
-- release/pypi-vX.Y.Z already exists on the remote and is not this ticket's (an interrupted
-- run, a branch made by hand, a concurrent release). It is compared with main: an orphan
-- that holds nothing main lacks (at most the recipe's own version-bump commits) is
-- deleted and the release starts again; a branch with real work is kept and shown.
local function bp_of(ctx)
  if not (ctx.recipe and ctx.recipe._bp) then return nil, "not a release-branch-pr release" end
  return ctx.recipe._bp.of(ctx)
end

local function look(ctx)
  local bp, why = bp_of(ctx)
  if not bp then return nil, why end
  local branch = bp.branch_of(ctx.state.VERSION)
  local repo <close> = bp.checkout()
  local refs = bp.remote_refs(repo)
  local tip = refs["refs/heads/" .. branch]
  if not tip then return { branch = branch } end
  local remote = bp.config.remote
  require("relua.error").check(repo:fetch(remote, { "refs/heads/" .. branch .. ":refs/remotes/" .. remote .. "/" .. branch,
    "refs/heads/" .. bp.config.base .. ":refs/remotes/" .. remote .. "/" .. bp.config.base }))
  local cmp = bp.compare(repo, refs["refs/heads/" .. bp.config.base], tip)
  return { branch = branch, tip = tip, cmp = cmp, bp = bp }
end

local function shown(commits)
  local t = {}
  for _, c in ipairs(commits) do t[#t + 1] = c.id:sub(1, 12) .. " " .. c.summary end
  return table.concat(t, "; ")
end

return {
  id = "release-branch-pr-branch-exists",
  title = "The release branch already exists: delete an orphan, keep real work",
  symptom = { phase = "release-branch", code = "branch_exists" },
  detect = {
    { name = "the release branch is on the remote; what it holds that main lacks", check = function(ctx)
        local l, why = look(ctx)
        if not l then return false, why end
        if not l.tip then return false, l.branch .. " is not on the remote (any more)" end
        if #l.cmp.work == 0 then
          return true, string.format("%s at %s: an orphan: %d commit(s) main lacks, none but a version bump", l.branch,
            l.tip:sub(1, 12), #l.cmp.commits)
        end
        return true, string.format("%s at %s holds real work main lacks: %s", l.branch, l.tip:sub(1, 12), shown(l.cmp.work))
      end },
  },
  root_cause = [[
A previous release workflow was interrupted, the branch was made by hand, or another release
ran at the same time: the branch name of this version is taken. An orphan (nothing on it
that main lacks, at most a version bump) is safe to delete; a branch with other commits may
hold work someone wants to keep, and is never deleted by relua.]],
  fix = {
    describe = function(ctx)
      local l = look(ctx)
      if not (l and l.tip) then return "nothing to delete: the branch is gone" end
      if #l.cmp.work == 0 then
        return string.format("delete the orphan %s (at %s) on the remote, then start the release again", l.branch, l.tip:sub(1, 12))
      end
      return string.format("stop: %s holds %d commit(s) main lacks (%s); it is kept", l.branch, #l.cmp.work, shown(l.cmp.work))
    end,
    run = function(ctx)
      local l, why = look(ctx)
      if not l then error(why, 0) end
      if not l.tip then ctx:log(l.branch .. " is not on the remote: nothing to delete") return end
      if #l.cmp.work > 0 then
        require("relua.error").raise("branch_kept", string.format(
          "%s holds %d commit(s) that %s lacks and that are not a version bump: %s. It is kept: nothing was deleted. " ..
          "Look at it (git log %s..%s/%s); merge what it holds into %s or move it to another branch, delete it yourself " ..
          "(git push %s --delete %s), then run relua recover %s again",
          l.branch, #l.cmp.work, l.bp.config.base, shown(l.cmp.work), l.bp.config.base, l.bp.config.remote, l.branch,
          l.bp.config.base, l.bp.config.remote, l.branch, ctx.ticket))
      end
      local repo <close> = l.bp.checkout()
      ctx:act(string.format("delete the orphan %s (at %s) on %s", l.branch, l.tip:sub(1, 12), l.bp.config.remote), function()
        require("relua.error").check(repo:push_delete_branch(l.bp.config.remote, l.branch))
      end)
      ctx:log(string.format("orphan branch %s deleted: it held nothing %s lacks", l.branch, l.bp.config.base))
    end,
    bootstrap_change = "one release at a time; let the recipe make the release branch (it reuses its own)",
  },
  verify = {
    { name = "the release branch is free on the remote", check = function(ctx)
        local l, why = look(ctx)
        if not l then return false, why end
        return l.tip == nil, l.tip and (l.branch .. " is still at " .. l.tip:sub(1, 12)) or (l.branch .. " is free")
      end },
  },
  resume = "release-branch",
  tags = { "release-branch-pr", "git", "branch" },
}
