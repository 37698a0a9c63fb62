--- relua.release.noreturn: the point of no return. A phase with `irreversible = true` is
-- one once it is done; a phase that published something (relua's publish core marks it
-- through `mark`) is one from that moment, done or not. Past it a release can only move
-- forward: `relua revert` leaves it and every phase before it alone, and the failure hints
-- say what the seeds say: retry the same version (fills gaps), or release a new version to
-- change what shipped. A phase with `followup = true` only tidies up after the release (a
-- `+dev` bump): its failure past the point of no return reads "released; follow-up failed".
local M = {}

--- The r.state key holding {PHASE = "why"} for phases that published (not exported to
--- processes: its name is not a shell name).
M.KEY = "relua.no_return"

--- Records durably that r's current phase passed the point of no return (what was done
--- that cannot be taken back). Safe to call again.
---@param r table  the run's context
---@param why string
function M.mark(r, why)
  if r == nil or r.dry_run or not r.phase then return end
  local marks = r.state[M.KEY]
  marks = type(marks) == "table" and marks or {}
  if marks[r.phase] then return end
  marks[r.phase] = tostring(why or "published")
  r.state[M.KEY] = marks
end

--- The run context of the phase running now (set by relua.release.context), for code that
--- has no `r` at hand: the publish core calls M.published after it sent something.
M.current = nil

--- Records that the running phase published `what` (see M.mark); nothing outside a run.
---@param what string
function M.published(what)
  local r = M.current
  if r and r.phase and not r.dry_run then M.mark(r, what) end
end

--- The index of the last phase past which nothing can be undone, with the reason, or nil.
--- recipe: the recipe table; state: the ticket's state document.
---@return integer? index
---@return string? phase
---@return string? why
function M.point(recipe, state)
  local marks = state and state.state and state.state[M.KEY]
  marks = type(marks) == "table" and marks or {}
  local status = {}
  for _, p in ipairs(state and state.phases or {}) do status[p.name] = p.status end
  local found, name, why
  for i, p in ipairs(recipe.phases) do
    if p.irreversible and status[p.name] == "done" then
      found, name, why = i, p.name, type(p.irreversible) == "string" and p.irreversible or "irreversible"
    end
    if marks[p.name] and status[p.name] ~= "reverted" then
      found, name, why = i, p.name, marks[p.name]
    end
  end
  return found, name, why
end

--- Is a recorded ticket past its recipe's point of no return? Loads the recipe the ticket
--- ran (nil when it cannot be read: then a published phase recorded in the state still
--- answers). For what `relua status --json` and the REPL offer next: no roll back past it.
---@param state table  the ticket's state document
---@return boolean?
function M.ticket_past(state)
  local path = state and state.recipe and state.recipe.path
  local ok, recipe = pcall(function() return require("relua.release").load_recipe(path) end)
  if ok and type(recipe) == "table" then return M.point(recipe, state) ~= nil end
  local marks = state and state.state and state.state[M.KEY]
  if type(marks) == "table" and next(marks) ~= nil then return true end
  return nil
end

--- The first line of a failure's hints. ctx: {ticket=, phase=, rc=, resume=, revert=,
--- recipe=, state=}.
---@return string
function M.headline(ctx)
  local what = (ctx.rc == nil or ctx.rc == 130 or ctx.rc == 143) and "interrupted" or "failed"
  -- no exit status: the run died in the phase (relua status of an interrupted ticket)
  local rc = ctx.rc and string.format("rc=%d", ctx.rc) or "the run died"
  local recipe, state = ctx.recipe, ctx.state
  local idx, name, why
  if type(recipe) == "table" and type(state) == "table" then idx, name, why = M.point(recipe, state) end
  if not idx then
    return string.format("release %s in phase %s (%s). Resume: %s. Roll back: %s.",
      what, ctx.phase, rc, ctx.resume, ctx.revert)
  end
  local followup = false
  for _, p in ipairs(recipe.phases) do
    if p.name == ctx.phase and p.followup then followup = true end
  end
  if followup and ctx.phase ~= name then
    return string.format("released; follow-up failed in phase %s (%s): the release itself is out " ..
      "(phase %s is past the point of no return). Retry the follow-up: %s.", ctx.phase, rc, name, ctx.resume)
  end
  return string.format("release %s in phase %s (%s), past the point of no return (phase %s: %s): " ..
    "what was published cannot be taken back, so there is no roll back. Retry the same version " ..
    "(it only fills gaps): %s. To change what shipped, release a new version.",
    what, ctx.phase, rc, name, why, ctx.resume)
end

return M
