--- relua.release.reshape: what a changed recipe does to the phases a ticket recorded
-- (issue 9, item 11). A recipe may gain phases and change its code between two runs of a
-- ticket; phases are matched by name. Three changes would change the meaning of what is
-- recorded, and are refused unless the run says --accept-recipe-change:
--  - a phase recorded done, failed, running or reverted is no longer in the recipe (its
--    record would be dropped);
--  - the recorded phases are in another order (a done phase after the new start would
--    run again);
--  - a new phase comes before a phase recorded done (that phase would run again).
-- A pending phase may be removed or moved freely: nothing about it is recorded.

local M = {}

-- {name = {index=, status=}} of the recorded phases.
local function index(phases)
  local at = {}
  for i, p in ipairs(phases) do at[p.name] = { index = i, status = p.status } end
  return at
end

--- The changes of `recipe` against the recorded `phases` that need the flag: a list of
--- lines for people (empty: nothing to accept). Each names the phases.
---@param phases table  the state's phases ({name=, status=} in recorded order)
---@param recipe table  a validated recipe
---@return string[]
function M.changes(phases, recipe)
  local was, now, lines = index(phases), {}, {}
  for i, p in ipairs(recipe.phases) do now[p.name] = i end
  for _, p in ipairs(phases) do
    if now[p.name] == nil and p.status ~= "pending" then
      lines[#lines + 1] = string.format("phase %s (recorded %s) is no longer in the recipe: its record would be dropped",
        p.name, p.status)
    end
  end
  -- The phases both know, in each order; a reorder matters when one of them has a record.
  local old, new, recorded = {}, {}, false
  for _, p in ipairs(phases) do
    if now[p.name] then
      old[#old + 1] = p.name
      recorded = recorded or p.status ~= "pending"
    end
  end
  for _, p in ipairs(recipe.phases) do
    if was[p.name] then new[#new + 1] = p.name end
  end
  if recorded and table.concat(old, "\0") ~= table.concat(new, "\0") then
    lines[#lines + 1] = string.format("the phases are in another order: recorded %s; the recipe now has %s",
      table.concat(old, ", "), table.concat(new, ", "))
  end
  -- A new phase before a done one: the run would start there and run the done one again.
  for i, p in ipairs(recipe.phases) do
    if was[p.name] == nil then
      for j = i + 1, #recipe.phases do
        local later = was[recipe.phases[j].name]
        if later and later.status == "done" then
          lines[#lines + 1] = string.format("new phase %s comes before phase %s, which is done: %s would run again",
            p.name, recipe.phases[j].name, recipe.phases[j].name)
          break
        end
      end
    end
  end
  return lines
end

--- The flag that accepts them.
M.FLAG = "--accept-recipe-change"

--- Raises the refusal (exit 2) for the changes of ticket's recipe at path.
---@param ticket string
---@param lines string[]
---@param command string the run to repeat with the flag
function M.refuse(ticket, lines, command)
  require("relua.error").raise("recipe-reshaped", string.format(
    "the recipe changed the phases ticket %s recorded:\n  %s", ticket, table.concat(lines, "\n  ")),
    { exit = 2, hint = string.format("put the phases back as they were recorded, or accept the change "
      .. "(it is logged in the audit log): %s %s", command, M.FLAG) })
end

return M
