-- recipes/release.lua: the four-phase release-run of a deployed git checkout, in a generic
-- form (prepare, migrate, ticket, verify). Copy it next to your deployment and adapt.
--
--   relua recipes/release.lua 1234             run (or resume) ticket 1234
--   relua recipes/release.lua 1234 --dry-run   say what would happen
--   relua status 1234 / relua log 1234         where it stands / the audit log
--   relua revert 1234                          undo: restore the backup, reset to BASE_SHA
--
-- Run it in the checkout. Settings come from the environment:
--   RELEASE_REMOTE   the remote to release from (default origin)
--   RELEASE_BRANCH   the branch to release (default main)
--   RELEASE_BACKUP   a command that backs up what migrate may break; it prints the backup's
--                    name on its last line, recorded as BACKUP (default: no backup)
--   RELEASE_RESTORE  a command that restores the backup named by $BACKUP (used by revert)
--   RELEASE_MIGRATE  the migration command (default ./migrate.sh when it exists)
--   RELEASE_VERIFY   the health check (default ./verify.sh when it exists)
--   RELEASE_VERIFY_TRIES  how many times the health check runs before verify fails (default 3)
--   RELEASE_VERIFY_DELAY  seconds between two tries (default 5)
-- Per-ticket logic goes in releases/TICKET-*.lua and releases/TICKET-*.sh, run in name
-- order by the ticket phase. A Lua file gets `r` as `...` and runs each time the phase
-- does. A shell script runs without a shell command line built around it: the interpreter
-- of its #! line (#!/bin/bash), else /bin/sh, with the file as its argument, in the
-- checkout, with BASE_SHA, MERGE_SHA, BACKUP, RELUA_TICKET in its environment; once it
-- exits 0 it is recorded and a re-run of the ticket does not run it again; a non-zero exit
-- fails the phase with that exit code and the script's last lines of output.
local git = require "relua.git"
local errors = require "relua.error"
local fs = require "relua.fs"

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

-- The checkout holding the working folder; a failure is a structured error.
local function checkout()
  return errors.check(git.discover("."))
end

-- The argv that runs a per-ticket shell script: its #! interpreter (and one argument, as
-- the kernel reads it), else /bin/sh; then the file. No command line is built from it.
local function script_argv(path)
  local f = errors.check(io.open(path, "r"))
  local first = f:read("l") or ""
  f:close()
  local interp, arg = first:match("^#!%s*(%S+)%s*(.-)%s*$")
  if not interp then return { "/bin/sh", path } end
  if arg ~= "" then return { interp, arg, path } end
  return { interp, path }
end

-- The ticket's own files, releases/TICKET-*.lua and releases/TICKET-*.sh, in name order.
local function ticket_files(r)
  local prefix = "releases/" .. r.ticket .. "-"
  local files = {}
  for _, path in ipairs(fs.glob(prefix .. "*")) do
    if path:match("%.lua$") or path:match("%.sh$") then files[#files + 1] = path end
  end
  table.sort(files)
  return files
end

local function run_ticket_files(r)
  local files = ticket_files(r)
  if #files == 0 then
    return r:log("no per-ticket scripts (releases/" .. r.ticket .. "-*.lua or .sh)")
  end
  for _, path in ipairs(files) do
    if path:match("%.lua$") then
      if path:find("[%[%]%*%?]") then
        errors.raise("EINVAL", "ticket: " .. path .. ": a name with [ ] * or ? cannot be included",
          { hint = "rename it without those characters" })
      end
      r:include(path)
    else
      r:step("script " .. path, function()
        r:run(script_argv(path))
        return true
      end)
    end
  end
end

-- The health check, RELEASE_VERIFY_TRIES times at most, RELEASE_VERIFY_DELAY s apart: a
-- service still starting after migrate recreated it passes on a later try.
local function verify(r)
  local cmd = env("RELEASE_VERIFY", exists("verify.sh") and "./verify.sh" or nil)
  if not cmd then return r:log("no health check (set RELEASE_VERIFY or add verify.sh)") end
  r:sh(cmd, { tries = math.max(1, math.tointeger(tonumber(env("RELEASE_VERIFY_TRIES", "3"))) or 3),
    delay = math.max(0, tonumber(env("RELEASE_VERIFY_DELAY", "5")) or 5) })
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
        local repo <close> = checkout()
        repo:assert_clean({ untracked = false })
        -- BASE_SHA is captured once, before the pull: a re-run keeps the first value.
        if r.state.BASE_SHA == nil then
          local head = repo:head().id
          if not head then
            errors.raise("EINVAL", "the checkout has no commit yet (HEAD is unborn): nothing is deployed here",
              { hint = "run the release in the deployed checkout, a clone of " .. REMOTE .. " at the running commit" })
          end
          r.state.BASE_SHA = head
        end
        r:act("fetch " .. REMOTE, function() errors.check(repo:fetch(REMOTE)) end)
        r.state.MERGE_SHA = errors.check(repo:rev_parse(REMOTE .. "/" .. BRANCH))
        if r.state.MERGE_SHA == r.state.BASE_SHA then
          -- Nothing was merged by this ticket: forget BASE_SHA, so the re-run after the
          -- operator's reset records the commit the checkout is really at.
          r.state.BASE_SHA = nil
          error(string.format("already up-to-date with %s/%s: nothing to release (BASE_SHA = MERGE_SHA = %s). " ..
            "If someone pulled before the release, find the pre-pull commit with git reflog, " ..
            "reset the checkout to it (git reset --hard SHA), and re-run", REMOTE, BRANCH, r.state.MERGE_SHA), 0)
        end
        if not errors.check(repo:is_ancestor(r.state.BASE_SHA, r.state.MERGE_SHA)) then
          error(string.format("%s/%s is not a fast-forward of the checkout (%s)", REMOTE, BRANCH,
            r.state.BASE_SHA:sub(1, 12)), 0)
        end
        local backup = env("RELEASE_BACKUP")
        if backup then
          r.state.BACKUP = r:step("backup", function()
            return r:sh(backup).stdout:match("([^\n]+)\n?$") or ""
          end)
        end
        r:step("merge", function()
          errors.check(repo:reset(r.state.MERGE_SHA, "hard"))
          r:log("checkout now at " .. r.state.MERGE_SHA)
          return r.state.MERGE_SHA
        end)
      end,
      revert = function(r)
        local restore = env("RELEASE_RESTORE")
        if restore and r.state.BACKUP then r:sh(restore) end
        if r.state.BASE_SHA then
          local repo <close> = checkout()
          r:act("reset the checkout to " .. r.state.BASE_SHA, function()
            errors.check(repo:reset(r.state.BASE_SHA, "hard"))
          end)
        end
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
      run = run_ticket_files,
    },
    {
      name = "verify",
      run = verify,
    },
  },
}
