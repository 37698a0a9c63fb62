--- relua.release.schema: the keys a recipe and a phase may have, in one place.
-- A key that is not listed here is refused when a recipe is loaded, naming the key and
-- the nearest known one (`revet` -> `revert`), so a typo never silently drops a revert or a
-- point of no return. A feature that adds a key adds it here, with a word on what it is.
-- Keys that start with "_" are the recipe author's own and are never checked.
local M = {}

--- Keys of the recipe table.
M.recipe = {
  name = "the recipe's name, shown by status",
  description = "a sentence on what the recipe releases",
  phases = "the ordered list of phases",
  lane = "the delivery lane whose controls admit the run",
  sha = "function(r): the release's commit id, for admission (default: HEAD)",
  preflight = "checks run before the first phase that changes anything",
  targets = "the publish targets",
  secrets = "the secret values the recipe declares",
}

--- Keys of a phase table.
M.phase = {
  name = "the phase's name",
  description = "a sentence on what the phase does",
  run = "function(r): the phase's work",
  revert = "function(r): undoes the phase",
  irreversible = "true: a point of no return",
  followup = "true: only tidies up after the release (a failure past the point of no return reads \"released; follow-up failed\")",
  preflight = "checks run before this phase",
}

-- Levenshtein distance (small strings: recipe keys).
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

--- The known key nearest to `key` (nil when none is close), and the sorted known keys.
---@param known table<string, string>
---@param key string
---@return string? nearest
---@return string[] names
function M.nearest(known, key)
  local names, best, best_d = {}, nil, math.huge
  for k in pairs(known) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local d = distance(key:lower(), k)
    if d < best_d then best, best_d = k, d end
  end
  if best_d > math.max(2, #key // 3) then best = nil end
  return best, names
end

--- The first unknown key of t (sorted, so the message is stable) and the sentence that
--- says what to do, or nil when every key is known.
---@param known table<string, string>
---@param t table
---@return string? key
---@return string? advice
function M.unknown(known, t)
  local bad = {}
  for k in pairs(t) do
    if type(k) ~= "string" then bad[#bad + 1] = "[" .. tostring(k) .. "]"
    elseif not known[k] and k:sub(1, 1) ~= "_" then bad[#bad + 1] = k end
  end
  if #bad == 0 then return nil end
  table.sort(bad)
  local near, names = M.nearest(known, bad[1])
  if near then return bad[1], string.format("did you mean %s?", near) end
  return bad[1], "the known keys are " .. table.concat(names, ", ")
end

return M
