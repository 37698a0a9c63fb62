-- The delivery lane recipe (recipes/delivery-lane.lua): its failure modes. Each failure
-- paused the lane for the ticket's SHA; once the cause is fixed, the fix is to unpause
-- that pause (a recovery tied to the SHA and reason, doc/controls.md) and resume. Their
-- symptoms match the line the recipe writes in the failed phase's output
-- ("delivery-lane LANE: REASON on SHA"), so they never match another recipe's failures.
-- They read the recipe's settings (LANE_NAME, LANE_REMOTE, LANE_BRANCH, LANE_CI,
-- LANE_VERIFY) and LANE_DEPLOY_CHECK, a command that exits 0 when the deploy target
-- accepts deploys.
local control = require "relua.control"
local git = require "relua.git"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function lane(ctx) return ctx.recipe and ctx.recipe.lane or env("LANE_NAME", "main") end

-- The open pause of the lane for this ticket's SHA and `reason`, or nil.
local function open_pause(ctx, reason)
  for _, p in ipairs(control.current(lane(ctx)).pauses) do
    if p.sha == ctx.state.SHA and p.reason == reason then return p end
  end
end

-- The fix: unpause the lane for (SHA, reason), recorded in the ticket's audit log.
local function unpause(reason)
  return function(ctx)
    local sha = ctx.state.SHA
    if not sha then error("the ticket has no SHA: it failed before the pin phase recorded one", 0) end
    if not open_pause(ctx, reason) then
      ctx:log(string.format("lane %s is not paused for %s (%s): nothing to unpause", lane(ctx), sha, reason))
      return
    end
    ctx:act(string.format("unpause lane %s for SHA %s (%s)", lane(ctx), sha, reason), function()
      control.unpause({ lane = lane(ctx), sha = sha, reason = reason, r = ctx })
    end)
  end
end

local function describe(reason, after)
  return function(ctx)
    return string.format("relua unpause --lane %s --sha %s --reason %s (a recovery for this failure), then %s",
      lane(ctx), tostring(ctx.state.SHA), reason, after)
  end
end

-- Verify: the lane admits the ticket again (no open pause for its SHA and reason).
local function resumed(reason)
  return { name = "the lane is no longer paused for this failure", check = function(ctx)
    local p = open_pause(ctx, reason)
    if p then return false, "still paused by " .. p.by .. " at " .. p.at end
    return true, "lane " .. lane(ctx) .. " admits the ticket"
  end }
end

return {
  {
    id = "lane-ci-failed",
    title = "CI failed on the released SHA; the repair has landed on main",
    symptom = { phase = "ci", output = { match = "delivery%-lane %S+: ci%-failed on " } },
    detect = {
      { name = "main's head is a repair on top of the failed SHA and passes CI", check = function(ctx)
          local sha = ctx.state.SHA
          local repo <close> = assert(git.discover("."))
          local remote, branch = env("LANE_REMOTE", "origin"), env("LANE_BRANCH", "main")
          local ok, err = repo:fetch(remote)
          if not ok then return false, "cannot fetch " .. remote .. ": " .. tostring(err) end
          local head = assert(repo:rev_parse(remote .. "/" .. branch))
          if head == sha then return false, "main's head is still the failed SHA " .. sha .. ": push the repair on top of it" end
          if not repo:is_ancestor(sha, head) then
            return false, "main's head " .. head .. " does not descend from the failed SHA " .. sha
          end
          local cmd = env("LANE_CI")
          if not cmd then return true, "repair " .. head .. " on main (no LANE_CI to check it)" end
          local res = ctx:sh(cmd, { check = false, env = { SHA = head } })
          if res.code ~= 0 then return false, "the repair " .. head .. " fails CI too (exit " .. res.code .. ")" end
          return true, "repair " .. head .. " on main passes CI"
        end },
    },
    root_cause = [[
The released commit fails CI. The lane stays paused for it until an operator unpauses; the
unpause records a recovery for exactly this SHA and reason, so a worker that re-reads the
failure still standing on that SHA cannot pause the lane again, and the repair (a commit on
top of the failed SHA) is admitted.]],
    fix = {
      describe = describe("ci-failed", "the ticket follows main to the repair (--from=pin)"),
      run = unpause("ci-failed"),
      bootstrap_change = "run CI before the commit reaches main (a merge queue), so main's head is green",
    },
    verify = { resumed("ci-failed") },
    resume = "pin",
    tags = { "lane", "ci" },
  },
  {
    id = "lane-deploy-failed",
    title = "The deploy failed; the deploy target accepts deploys again",
    symptom = { phase = "deploy", output = { match = "delivery%-lane %S+: deploy%-failed on " } },
    detect = {
      { name = "LANE_DEPLOY_CHECK: the deploy target accepts deploys", check = function(ctx)
          local cmd = env("LANE_DEPLOY_CHECK")
          if not cmd then return false, "LANE_DEPLOY_CHECK is not set: set it to a command that exits 0 when the target accepts deploys" end
          local res = ctx:sh(cmd, { check = false, timeout = 30 })
          if res.code ~= 0 then return false, "the target still refuses (exit " .. tostring(res.code) .. "): read the deploy's output" end
          return true, "the target accepts deploys now"
        end },
    },
    root_cause = [[
The deploy of the released SHA failed because its target was unavailable (down, full,
locked by another deploy). The SHA itself is not at fault: once the target is back, the
same SHA is deployed again.]],
    fix = {
      describe = describe("deploy-failed", "deploy the same SHA again"),
      run = unpause("deploy-failed"),
      bootstrap_change = "make the deploy wait for its target (a bounded retry) before it fails",
    },
    verify = { resumed("deploy-failed") },
    resume = "deploy",
    tags = { "lane", "deploy" },
  },
  {
    id = "lane-verify-race",
    title = "The health check gave up before the service came up",
    symptom = { phase = "verify", output = { match = "delivery%-lane %S+: verify%-failed on " } },
    detect = {
      { name = "LANE_VERIFY passes within LANE_VERIFY_WAIT seconds", check = function(ctx)
          local cmd = env("LANE_VERIFY")
          if not cmd then return false, "LANE_VERIFY is not set" end
          local wait = tonumber(env("LANE_VERIFY_WAIT", "30")) or 30
          local delay = tonumber(env("LANE_VERIFY_DELAY", "5")) or 5
          local tries = math.max(1, math.ceil(wait / math.max(delay, 0.01)))
          for i = 1, tries do
            if ctx:sh(cmd, { check = false, timeout = 30 }).code == 0 then
              return true, string.format("healthy on check %d", i)
            end
            if i < tries then require("relua.proc").sleep(delay) end
          end
          return false, string.format("still unhealthy after %d checks over %gs: not a race; read the service's logs", tries, wait)
        end },
    },
    root_cause = [[
The service needed longer to come up after the deploy than the health check's tries
allowed (LANE_VERIFY_TRIES x LANE_VERIFY_DELAY).]],
    fix = {
      describe = describe("verify-failed", "run the health check again"),
      run = unpause("verify-failed"),
      bootstrap_change = "raise LANE_VERIFY_TRIES or LANE_VERIFY_DELAY to cover the service's start",
    },
    verify = { resumed("verify-failed") },
    resume = "verify",
    tags = { "lane", "verify" },
  },
}
