-- recipes/release.lua: the four-phase release-run of a deployed git checkout, in a generic
-- form (prepare, migrate, ticket, verify). Copy it next to your deployment and adapt.
--
--   relua recipes/release.lua 1234             run (or resume) ticket 1234
--   relua recipes/release.lua 1234 --dry-run   say what would happen
--   relua status 1234 / relua log 1234         where it stands / the audit log
--   relua revert 1234                          undo: restore backups, reset to BASE_SHA
--
-- Run it in the checkout. Settings come from the environment:
--   RELEASE_REMOTE   the remote to release from (default origin)
--   RELEASE_BRANCH   the branch to release (default main)
--   RELEASE_BACKUP   a command that backs up what migrate may break; it prints the backup's
--                    name on its last line (default: none)
--   RELEASE_RESTORE  a command that restores a backup named by $BACKUP (used by revert)
--   RELEASE_MIGRATE  the migration command (default ./migrate.sh when it exists)
--   RELEASE_VERIFY   the health check (default ./verify.sh when it exists)
-- Per-ticket logic goes in releases/TICKET-*.lua: each file gets `r` as `...`.

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function git(r, ...)
  return (r:run({ "git", ... }).stdout:gsub("%s+$", ""))
end

local REMOTE = env("RELEASE_REMOTE", "origin")
local BRANCH = env("RELEASE_BRANCH", "main")

return {
  name = "release-run",
  phases = {
    {
      name = "prepare",
      -- Git state and backups, before any deploy mutation.
      run = function(r)
        if git(r, "status", "--porcelain", "--untracked-files=no") ~= "" then
          error("Working tree is dirty. Commit, stash or discard before release.", 0)
        end
        -- BASE_SHA is captured once, before the pull: a re-run keeps the first value.
        if r.state.BASE_SHA == nil then r.state.BASE_SHA = git(r, "rev-parse", "HEAD") end
        r:run({ "git", "fetch", REMOTE, BRANCH })
        r.state.MERGE_SHA = git(r, "rev-parse", "FETCH_HEAD")
        if r.state.MERGE_SHA == r.state.BASE_SHA then
          error(string.format("already up-to-date with %s/%s: nothing to release " ..
            "(if someone pulled before the release, find the pre-pull commit with git reflog, " ..
            "git reset --hard it, and re-run)", REMOTE, BRANCH), 0)
        end
        local backup = env("RELEASE_BACKUP")
        if backup then
          r.state.BACKUP = r:step("backup", function()
            local out = r:sh(backup).stdout
            return out:match("([^\n]+)\n?$") or ""
          end)
        end
        r:step("merge", function()
          r:run({ "git", "merge", "--ff-only", r.state.MERGE_SHA })
          return git(r, "rev-parse", "HEAD")
        end)
      end,
      revert = function(r)
        local restore = env("RELEASE_RESTORE")
        if restore and r.state.BACKUP then r:sh(restore) end
        if r.state.BASE_SHA then r:run({ "git", "reset", "--hard", r.state.BASE_SHA }) end
      end,
    },
    {
      name = "migrate",
      run = function(r)
        local cmd = env("RELEASE_MIGRATE", exists("migrate.sh") and "./migrate.sh" or nil)
        if cmd then r:sh(cmd) else r:log("no migration (set RELEASE_MIGRATE or add migrate.sh)") end
      end,
    },
    {
      name = "ticket",
      run = function(r)
        r:include("releases/" .. r.ticket .. "-*.lua")
      end,
    },
    {
      name = "verify",
      run = function(r)
        local cmd = env("RELEASE_VERIFY", exists("verify.sh") and "./verify.sh" or nil)
        if cmd then r:sh(cmd) else r:log("no health check (set RELEASE_VERIFY or add verify.sh)") end
      end,
    },
  },
}
