-- recipes/delivery-lane.lua: release the head of main, exactly, under the lane's delivery
-- controls (doc/controls.md). Each ticket pins one SHA (the remote branch's head), waits for
-- its CI result, deploys it and verifies it. When a phase fails on that SHA the lane is
-- paused for it (reason ci-failed, deploy-failed or verify-failed), so nothing else is
-- released until an operator unpauses; the unpause records a recovery that admits the
-- repair (a commit on top of the failed SHA), and a stale worker that restates the
-- recovered failure cannot pause the lane again (doc/delivery-lane.md). The deploy is the
-- point of no return: `relua revert` undoes nothing after it (the lane rolls forward).
--
--   relua recipes/delivery-lane.lua T1              release main's head as ticket T1
--   relua controls                                  is the lane paused, and by what
--   relua unpause --sha SHA --reason ci-failed      after the cause is understood
--   relua recipes/delivery-lane.lua T2              release the repair (admitted)
--   relua recipes/delivery-lane.lua T1 --from=pin   or: the failed ticket follows main
--   relua diagnose T1 / relua recover T1 --yes      the lane's playbooks (playbooks/delivery-lane.lua)
--
-- Run it in a clone of the repository (the lane's workspace; the pin phase moves it to the
-- SHA). Settings come from the environment:
--   LANE_NAME          the lane (default main)
--   LANE_REMOTE        the remote (default origin)
--   LANE_BRANCH        the branch whose head is released (default main)
--   LANE_CI            a command that exits 0 when CI passed on $SHA (default: no CI gate)
--   LANE_DEPLOY        the deploy command, run with $SHA (required)
--   LANE_VERIFY        the health check after the deploy (default: none)
--   LANE_VERIFY_TRIES  how many times the health check runs before it fails (default 3)
--   LANE_VERIFY_DELAY  seconds between two tries (default 5)
-- Commands run in the workspace with the ticket's state exported ($SHA, $RELUA_TICKET).
local git = require "relua.git"
local errors = require "relua.error"
local control = require "relua.control"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local LANE = env("LANE_NAME", "main")
local REMOTE = env("LANE_REMOTE", "origin")
local BRANCH = env("LANE_BRANCH", "main")

local function workspace()
  return errors.check(git.discover("."))
end

-- The head of REMOTE/BRANCH after a fetch (remote-tracking references only: the work tree
-- is left alone).
local function main_head()
  local repo <close> = workspace()
  errors.check(repo:fetch(REMOTE))
  return errors.check(repo:rev_parse(REMOTE .. "/" .. BRANCH))
end

-- The SHA the admission computed for a new ticket (run once per process): the pin phase
-- releases that one, not a head that moved meanwhile.
local admitted

-- A phase whose failure pauses the lane for the ticket's SHA with `reason` (the pause is
-- tied to the SHA and the reason: relua unpause names both). A cancellation (Ctrl-C,
-- SIGTERM) is not a failure of the SHA and pauses nothing.
local function pausing(reason, fn)
  return function(r)
    local ok, err = pcall(fn, r)
    if ok then return end
    local cancelled = errors.is(err) and err.code == "interrupted"
    if r.state.SHA and not cancelled then
      -- this line in the phase's output is what the lane's playbooks match
      r:log(string.format("delivery-lane %s: %s on %s", LANE, reason, r.state.SHA))
      local paused, res = pcall(control.pause, { lane = LANE, sha = r.state.SHA, reason = reason, r = r })
      if not paused then
        r:log("could not pause lane " .. LANE .. ": " .. (errors.is(res) and res.message or tostring(res)))
      elseif res.effect == "ignored" then
        r:log(string.format("lane %s not paused again: %s", LANE, res.why))
      elseif res.effect == "pauses" then
        r:log(string.format("lane %s paused: SHA %s, reason %s", LANE, r.state.SHA, reason))
      end
    end
    error(err, 0)
  end
end

local function verify(r)
  local cmd = env("LANE_VERIFY")
  if not cmd then return r:log("no health check (set LANE_VERIFY)") end
  r:sh(cmd, { tries = math.max(1, math.tointeger(tonumber(env("LANE_VERIFY_TRIES", "3"))) or 3),
    delay = math.max(0, tonumber(env("LANE_VERIFY_DELAY", "5")) or 5) })
end

return {
  name = "delivery-lane",
  lane = LANE,
  -- The release's SHA, for admission: the one this ticket pinned, else main's head now.
  sha = function(r)
    if r.state.SHA then return r.state.SHA end
    admitted = admitted or main_head()
    return admitted
  end,
  preflight = {
    { name = "LANE_DEPLOY is set", run = function()
        if env("LANE_DEPLOY") then return true end
        return false, "set LANE_DEPLOY to the command that deploys $SHA"
      end },
  },
  phases = {
    {
      name = "pin",
      description = "fetch, pin the SHA of " .. REMOTE .. "/" .. BRANCH .. " and move the workspace to it",
      run = function(r)
        local repo <close> = workspace()
        repo:assert_clean({ untracked = false })
        -- A run with --from=pin follows main: the ticket then releases the newest head.
        local sha = admitted
        if not sha then
          r:act("fetch " .. REMOTE, function() errors.check(repo:fetch(REMOTE)) end)
          sha = r.dry_run and (r.state.SHA or "(" .. REMOTE .. "/" .. BRANCH .. ")")
            or errors.check(repo:rev_parse(REMOTE .. "/" .. BRANCH))
        end
        if r.dry_run then return r:log("would release " .. sha) end
        if r.state.SHA and r.state.SHA ~= sha then
          local earlier = r.state.EARLIER_SHAS or {}
          earlier[#earlier + 1] = r.state.SHA
          r.state.EARLIER_SHAS = earlier
          r:log(string.format("following %s/%s: %s -> %s", REMOTE, BRANCH, r.state.SHA, sha))
        end
        r.state.SHA = sha
        errors.check(repo:reset(sha, "hard"))
        r:log("releasing " .. sha)
      end,
    },
    {
      name = "ci",
      description = "the CI result of the SHA (LANE_CI)",
      run = pausing("ci-failed", function(r)
        local cmd = env("LANE_CI")
        if not cmd then return r:log("no CI gate (set LANE_CI)") end
        local res = r:sh(cmd, { check = false })
        if res.code ~= 0 then
          errors.raise("ci-failed", string.format("CI failed on %s (LANE_CI exited %d)", r.state.SHA, res.code),
            { rc = 1, hint = "push the repair on top of it, then relua unpause --lane " .. LANE .. " --sha "
              .. r.state.SHA .. " --reason ci-failed" })
        end
      end),
    },
    {
      name = "deploy",
      description = "deploy the SHA (LANE_DEPLOY)",
      -- The lane rolls forward: a deployed SHA is replaced by a repair, never taken back.
      irreversible = "deployed: the lane rolls forward with a repair on main",
      run = pausing("deploy-failed", function(r)
        r:sh(env("LANE_DEPLOY"))
        r.state.DEPLOYED = r.state.SHA
      end),
    },
    {
      name = "verify",
      description = "the health check, a bounded number of tries (LANE_VERIFY)",
      run = pausing("verify-failed", verify),
    },
  },
}
