-- recipes/release-branch-pr.lua, scenario E of its runbook: a partial release. Some steps
-- succeeded (the tag, PyPI, the forge release, the pull request), others did not. What
-- exists is worked out from git, the index and the forge (not from the ledger), shown as
-- the runbook's table row, and the release resumes at the tag: every step from there finds
-- what exists and does only the missing ones (a tag at the release commit is continued,
-- identical files on PyPI are skipped, the release and the pull request are found).
-- Without a ledger (another runner): BRANCH_PR_VERSION=X.Y.Z adopts the release branch at
-- the tag and does the same.
local function bp_of(ctx)
  if not (ctx.recipe and ctx.recipe._bp) then return nil, "not a release-branch-pr release" end
  return ctx.recipe._bp.of(ctx)
end

-- The runbook's "Action needed" for what exists.
local function todo(inv, want)
  local t = {}
  if inv.tag ~= want then t[#t + 1] = "push the tag" end
  if inv.pypi ~= "identical" then t[#t + 1] = "publish to PyPI (" .. tostring(inv.pypi) .. ")" end
  if not inv.release then t[#t + 1] = "create the forge release" end
  if not inv.pr then t[#t + 1] = "open the pull request" end
  return #t > 0 and table.concat(t, ", ") or "nothing: verify"
end

return {
  id = "release-branch-pr-partial",
  title = "Partial release: work out what exists, do only the missing steps",
  symptom = { phase = { "pypi-upload", "github-release", "verify-release" } },
  detect = {
    { name = "what exists (git, PyPI, the forge)", check = function(ctx)
        local bp, why = bp_of(ctx)
        if not bp then return false, why end
        local inv = bp.inventory(ctx.state.VERSION)
        if inv.pypi == "different" then return false, "PyPI holds other bytes: that is release-branch-pr-bump" end
        return true, bp.row(inv) .. "; to do: " .. todo(inv, ctx.state.BUMP_SHA)
      end },
  },
  root_cause = [[
The release stopped half-way: the index or the forge was down, refused a request or timed
out, or someone removed a piece. What reached PyPI is immutable and never sent again; the
tag, the forge release and the pull request are found when they exist.]],
  fix = {
    describe = "nothing to undo: the re-run from the tag does only the missing steps",
    run = function(ctx)
      local bp = ctx.recipe._bp
      local inv = bp.inventory(ctx.state.VERSION)
      ctx:log(bp.row(inv))
      ctx:log("to do: " .. todo(inv, ctx.state.BUMP_SHA))
    end,
    bootstrap_change = "publish through relua.publish (verify-or-publish) and make every forge step get-or-create",
  },
  verify = {
    { name = "PyPI and the forge answer", check = function(ctx)
        local inv = ctx.recipe._bp.inventory(ctx.state.VERSION)
        if tostring(inv.pypi):find("^unknown") then return false, "PyPI: " .. inv.pypi end
        if inv.release == false or inv.pr == false then return false, "the forge could not be read" end
        return true, ctx.recipe._bp.row(inv)
      end },
  },
  resume = "release-tag",
  tags = { "release-branch-pr", "publish", "forge" },
}
