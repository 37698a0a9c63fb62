-- The release-run recipe (recipes/release.lua) found nothing to release: someone ran
-- `git pull` in the deployed checkout before the release, so the commit captured as
-- BASE_SHA already is the release (BASE_SHA == MERGE_SHA). The reflog still has the
-- commit from before the pull: reset the checkout to it (after confirmation) and record it
-- as BASE_SHA, so the release and its revert know where the deployment really was.
local git = require "relua.git"

local function repo() return assert(git.discover(".")) end

-- The commit before the most recent pull, or nil and why.
local function pre_pull()
  local r <close> = repo()
  local sha, entry = r:reflog_before("HEAD", "pull")
  if not sha then return nil, "the reflog of HEAD has no pull" end
  local head = r:head().id
  if sha == head then return nil, "the pull did not move HEAD" end
  if not r:is_ancestor(sha, head) then return nil, "the commit before the pull is not an ancestor of HEAD" end
  return sha, entry
end

return {
  id = "release-pre-pull",
  title = "Someone pulled before the release: nothing to release",
  symptom = { phase = "prepare", message = "already up-to-date" },
  detect = {
    { name = "the reflog has a pull that moved HEAD", check = function()
        local sha, why = pre_pull()
        if not sha then return false, why end
        return true, "pre-pull commit " .. sha:sub(1, 12) .. " (" .. tostring(why.message) .. ")"
      end },
  },
  root_cause = [[
The release captures BASE_SHA before it pulls. A `git pull` on the server before the
release moved the checkout to the release commit already, so BASE_SHA == MERGE_SHA and
there is nothing to release (and no backup point to revert to).]],
  fix = {
    describe = function()
      local sha = pre_pull()
      return string.format("reset the checkout (hard) to the pre-pull commit %s and record it as BASE_SHA", tostring(sha))
    end,
    run = function(ctx)
      local sha, why = pre_pull()
      if not sha then error("no pre-pull commit: " .. tostring(why), 0) end
      local r <close> = repo()
      ctx:act("reset the checkout to " .. sha, function()
        assert(r:reset(sha, "hard"))
      end)
      ctx.state.BASE_SHA = sha
      ctx:log("BASE_SHA is now the pre-pull commit " .. sha)
    end,
    bootstrap_change = "do not pull on the server: the release fetches and merges itself",
  },
  verify = {
    { name = "HEAD is BASE_SHA and behind the remote", check = function(ctx)
        local r <close> = repo()
        local head = r:head().id
        local base = ctx.state.BASE_SHA
        if head ~= base then return false, "HEAD " .. head:sub(1, 12) .. " is not BASE_SHA " .. tostring(base) end
        if ctx.state.MERGE_SHA and head == ctx.state.MERGE_SHA then return false, "HEAD is the release commit still" end
        return true, "HEAD is at BASE_SHA " .. head:sub(1, 12)
      end },
  },
  resume = "prepare",
  tags = { "release", "prepare", "git" },
}
