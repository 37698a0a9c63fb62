-- recipes/release-branch-pr.lua, scenario B of its runbook: the tag vX.Y.Z already exists
-- on the remote at another commit than this release's version commit (a tag at the
-- intended commit is simply continued by the release-tag phase). relua never moves a tag: this
-- stops and explains what the tag is and what to do, and continues once the tag is gone or
-- at the release's commit.
local function bp_of(ctx)
  if not (ctx.recipe and ctx.recipe._bp) then return nil, "not a release-branch-pr release" end
  return ctx.recipe._bp.of(ctx)
end

-- {tag=, at= (its commit on the remote or nil), want= (the release's commit), pypi=}
local function look(ctx, with_pypi)
  local bp, why = bp_of(ctx)
  if not bp then return nil, why end
  local v = ctx.state.VERSION
  local out = { tag = bp.tag_of(v), want = ctx.state.BUMP_SHA, bp = bp }
  if with_pypi then
    local inv = bp.inventory(v)
    out.at, out.pypi = inv.tag, inv.pypi
  else
    local repo <close> = bp.checkout()
    out.at = bp.remote_refs(repo)["refs/tags/" .. out.tag]
  end
  return out
end

local function explain(l, ticket)
  local released = l.pypi == "different" or l.pypi == "there (not built here)" or l.pypi == "partial"
  return string.format("the tag %s is on %s at %s, not at this release's commit %s; PyPI: %s. relua never moves a tag",
    l.tag, l.bp.config.remote, l.at:sub(1, 12), tostring(l.want):sub(1, 12), tostring(l.pypi)),
    (released and string.format("%s is out on PyPI from other content: release the next version (a new ticket, or " ..
      "BRANCH_PR_VERSION)", l.tag) or string.format("if %s is wrong (nothing was published from it), delete it " ..
      "(git push %s --delete tag %s) and run relua recover %s again; if it is a real release, release the next version " ..
      "(a new ticket, or BRANCH_PR_VERSION)", l.tag, l.bp.config.remote, l.tag, ticket))
end

return {
  id = "release-branch-pr-tag-exists",
  title = "The tag already exists at another commit: stop and explain",
  symptom = { phase = "release-tag", code = "tag_exists" },
  detect = {
    { name = "where the tag is on the remote", check = function(ctx)
        local l, why = look(ctx)
        if not l then return false, why end
        -- the cause may be gone since the failure (the wrong tag deleted by hand): the
        -- playbook then only verifies and continues
        if not l.at then return true, l.tag .. " is free now (deleted since the failure): the release-tag phase makes it" end
        if l.at == l.want then return true, l.tag .. " is at the release's commit now: the release-tag phase continues" end
        return true, string.format("%s at %s, the release's commit is %s", l.tag, l.at:sub(1, 12), tostring(l.want):sub(1, 12))
      end },
  },
  root_cause = [[
A tag of this version was made before: by an earlier release of the same number from other
content, by hand, or by a run whose version commit was made again since. Moving a tag that
others may have fetched (and that may have been published) rewrites a release: relua
leaves that decision to you.]],
  fix = {
    describe = "check where the tag points; continue only when it is gone or at the release's commit (relua does not move it)",
    run = function(ctx)
      local l, why = look(ctx, true)
      if not l then error(why, 0) end
      if not l.at or l.at == l.want then
        ctx:log(string.format("the tag %s is %s: continuing", l.tag, l.at and "at the release's commit" or "free"))
        return
      end
      local msg, what = explain(l, ctx.ticket)
      require("relua.error").raise("tag_exists", msg .. ": " .. what)
    end,
    bootstrap_change = "never tag a release by hand; one release of a version at a time",
  },
  verify = {
    { name = "the tag is free or at the release's commit", check = function(ctx)
        local l, why = look(ctx)
        if not l then return false, why end
        return not l.at or l.at == l.want, l.tag .. (l.at and (" at " .. l.at:sub(1, 12)) or " is free")
      end },
  },
  resume = "release-tag",
  tags = { "release-branch-pr", "git", "tag" },
}
