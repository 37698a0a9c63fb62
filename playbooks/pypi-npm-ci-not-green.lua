-- recipes/pypi-npm.lua: the gate refused to release: the forge's CI verdict for the
-- commit is not green (failing, still running, or nothing reported). Nothing was done: no
-- version, no tag. The fix waits (bounded) for CI of the branch's head to finish green; a
-- fix pushed meanwhile is what gets released, since the gate reads the head again.
local function wait_seconds()
  return tonumber(os.getenv("PYPI_NPM_CI_WAIT") or "") or 600
end

-- The CI verdict of the branch's head on the remote: verdict, sha (or nil, why).
local function head_ci(ctx)
  local pn = ctx.recipe._pn
  local c, why = pn.forge_client()
  if not c then return nil, why end
  local repo <close> = pn.checkout()
  local sha = pn.remote_head(repo)
  local ok, verdict = pcall(c.ci, c, sha)
  if not ok then return nil, type(verdict) == "table" and verdict.message or tostring(verdict) end
  return verdict, sha
end

return {
  id = "pypi-npm-ci-not-green",
  title = "CI is not green for the commit to release (gate)",
  symptom = { phase = "gate", code = "ci_not_green" },
  detect = {
    { name = "the forge answers for the CI of the branch's head", check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        local verdict, sha = head_ci(ctx)
        if not verdict then return false, "the forge does not answer: " .. tostring(sha) end
        return true, string.format("CI for %s: %s (%s)", sha:sub(1, 12), verdict.state, verdict.summary)
      end },
  },
  root_cause = [[
The release gate asks the forge for the CI verdict (statuses and check runs) of the commit
it would release, and releases only a green one. It was failing, still running, or had
not reported. Nothing was done yet: no version was computed, no tag pushed.]],
  fix = {
    describe = function()
      return string.format("wait up to %d s (PYPI_NPM_CI_WAIT) for CI of the branch's head to be green; "
        .. "if it is failing, push the fix first (or set PYPI_NPM_SKIP_CI=1 to release anyway, at your risk)", wait_seconds())
    end,
    run = function(ctx)
      local deadline = os.time() + wait_seconds()
      while true do
        local verdict, sha = head_ci(ctx)
        if not verdict then error("the forge does not answer: " .. tostring(sha), 0) end
        ctx:log(string.format("CI for %s: %s (%s)", sha:sub(1, 12), verdict.state, verdict.summary))
        if verdict.state == "success" then return end
        if verdict.state == "failure" then
          error(string.format("CI is failing for %s (%s): push a fix to the branch (or re-run CI), then recover again; "
            .. "PYPI_NPM_SKIP_CI=1 releases without the check", sha:sub(1, 12), verdict.summary), 0)
        end
        if os.time() >= deadline then
          error(string.format("CI has not finished for %s within %d s: recover again later", sha:sub(1, 12), wait_seconds()), 0)
        end
        ctx:sh("sleep 2")
      end
    end,
    bootstrap_change = "release only commits whose CI is green (the gate); never skip it by habit",
  },
  verify = {
    { name = "CI is green for the branch's head", check = function(ctx)
        local verdict, sha = head_ci(ctx)
        if not verdict then return false, tostring(sha) end
        return verdict.state == "success", string.format("CI for %s: %s", sha:sub(1, 12), verdict.state)
      end },
  },
  resume = "gate",
  tags = { "pypi-npm", "gate", "ci" },
}
