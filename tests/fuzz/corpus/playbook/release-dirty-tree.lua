-- The release-run recipe (recipes/release.lua) refused to start: the deployed checkout has
-- uncommitted changes. Someone left work in progress on the server; it may be real work.
-- The fix shows what is there and never stashes blindly: the stash command is ad hoc, run
-- only when the operator says so (on the prompt, or with --adhoc).
local git = require "relua.git"

local function repo() return assert(git.discover(".")) end

local function dirty_paths()
  local r <close> = repo()
  local dirty, paths = r:dirty({ untracked = false })
  if dirty == nil then error(paths, 0) end
  return dirty, paths
end

return {
  id = "release-dirty-tree",
  title = "Uncommitted changes in the deployed checkout at prepare",
  symptom = { phase = "prepare", message = "Working tree is dirty" },
  detect = {
    { name = "the checkout has uncommitted changes", check = function()
        local dirty, paths = dirty_paths()
        return dirty, dirty and ("changed: " .. table.concat(paths, ", ")) or "the checkout is clean now"
      end },
  },
  root_cause = [[
Someone changed files in the deployed checkout (a hot fix on the server, an editor's
backup, a generated file) and did not commit them. A release would overwrite them.
Often it is legitimate work in progress that needs committing: look before you act.]],
  fix = {
    describe = function()
      local _, paths = dirty_paths()
      return "show the changes (" .. table.concat(paths, ", ") .. "); nothing is changed unless you run the ad hoc command"
    end,
    run = function(ctx)
      local r <close> = repo()
      local _, _, entries = r:dirty({ untracked = false })
      for _, e in ipairs(entries) do
        ctx:log(string.format("uncommitted: %s (index: %s, work tree: %s)", e.path, tostring(e.index), tostring(e.worktree)))
      end
    end,
    adhoc = [[git stash push -m "relua: found in the deployed checkout before ticket $RELUA_TICKET"
git stash list | head -n 1]],
    bootstrap_change = "never edit the deployed checkout by hand: commit the change and release it",
  },
  verify = {
    { name = "the checkout is clean", check = function()
        local dirty, paths = dirty_paths()
        return not dirty, dirty and ("still changed: " .. table.concat(paths, ", ")) or "clean"
      end },
  },
  resume = "prepare",
  tags = { "release", "prepare", "git" },
}
