--- relua.control.gate: what every release run asks of the delivery controls, kept small
-- because it is compiled on every run (a no-op re-run included): the lane name check of
-- the recipe validator, and admission's fast path (a lane without records admits at once).
-- Anything more is relua.control's (doc/controls.md).
local M = {}

M.DEFAULT_LANE = "main"

--- Checks a lane name: 1-64 characters of A-Z a-z 0-9 . _ - (not "." or "..", not
--- starting with "-"), as the store names things.
---@param lane any
---@return boolean
function M.valid_lane(lane)
  return type(lane) == "string" and #lane >= 1 and #lane <= 64 and lane:match("^[%w%._%-]+$") ~= nil
    and lane ~= "." and lane ~= ".." and not lane:match("^%-")
end

--- Admission of a release (relua.control.admission): returns {lane=, sha=, why=}, or
--- raises exit 3 when the lane's control refuses the run.
---@param recipe table
---@param ticket string
---@param values table?  the ticket's recorded state values
---@param st userdata    the run's open store
---@return table
function M.admission(recipe, ticket, values, st)
  local lane = recipe.lane or M.DEFAULT_LANE
  local list = st:controls(lane)
  if list and #list == 0 then return { lane = lane } end
  return require("relua.control").admission(recipe, ticket, values, st)
end

return M
