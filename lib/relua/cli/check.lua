--- relua.cli.check: `relua check RECIPE [--from=PHASE]` validates a recipe and its
-- playbooks without running anything (like `goreleaser check`): the recipe is loaded with
-- relua's primitives guarded as in a dry run, and every problem is listed, not only the
-- first: unknown keys, bad or duplicate phase names, missing functions, a --from that names
-- no phase, and the playbooks' own problems (relua.playbook's lint, when it is there).
local errors = require "relua.error"
local release = require "relua.release"

local M = {}

-- The problems of the playbooks the recipe would use (its playbooks/ folder, RELUA_PLAYBOOKS,
-- the shipped set), as the playbooks engine (relua.playbook) finds them when it loads them.
-- Returns the list, and whether the engine was there to look.
local function playbook_problems(path)
  local ok, pb = pcall(require, "relua.playbook")
  if not ok or type(pb) ~= "table" or type(pb.discover) ~= "function" then return {}, false end
  local ok2, found = pcall(pb.discover, { recipe = path })
  if not ok2 then return { "playbooks: " .. (errors.is(found) and found.message or tostring(found)) }, true end
  local list = {}
  for _, p in ipairs(found.problems or {}) do
    list[#list + 1] = "playbook " .. (pb.format_problem and pb.format_problem(p) or tostring(p.message))
  end
  return list, true
end

--- Checks a recipe file; returns the problems (strings) and the recipe when it loaded.
---@param path string
---@param from string?  a --from to check
---@return string[] problems
---@return table? recipe
---@return boolean? linted  the playbooks were checked
function M.check(path, from)
  local chunk, err = loadfile(path)
  if not chunk then return { err } end
  local ok, recipe = require("relua.dryrun").call(function() end, chunk)
  if not ok then
    return { "it raised an error while loading: " .. (errors.is(recipe) and recipe.message or tostring(recipe)) }
  end
  local problems = release.problems(recipe)
  if #problems == 0 and from then
    local names, found = {}, false
    for i, p in ipairs(recipe.phases) do
      names[i] = p.name
      if p.name == from then found = true end
    end
    if not found then
      problems[#problems + 1] = string.format("--from=%s names no phase: the phases are %s", from, table.concat(names, ", "))
    end
  end
  local linted
  if #problems == 0 then
    local more
    more, linted = playbook_problems(path)
    for _, p in ipairs(more) do problems[#problems + 1] = p end
  end
  return problems, recipe, linted
end

--- `relua check RECIPE [--from=PHASE]`
---@return integer
function M.command(...)
  local args, path, from = { ... }, nil, nil
  for _, a in ipairs(args) do
    local v = a:match("^%-%-from=(.*)$")
    if v then from = v
    elseif a:sub(1, 1) == "-" then errors.usage("unknown option " .. a)
    elseif path then errors.usage("unexpected argument " .. a)
    else path = a end
  end
  if not path then errors.usage("no recipe given") end
  local f, why = io.open(path, "r")
  if not f then errors.usage("cannot open recipe " .. why) end
  f:close()
  local problems, recipe, linted = M.check(path, from)
  if #problems > 0 then
    for _, p in ipairs(problems) do io.stderr:write(path, ": ", require("relua.core.secret").mask(p), "\n") end
    io.stderr:write(string.format("%s: %d problem%s; nothing was run\n", path, #problems, #problems == 1 and "" or "s"))
    return 2
  end
  local names = {}
  for i, p in ipairs(recipe.phases) do
    names[i] = p.name .. (p.revert and "" or " (no revert)") .. (p.irreversible and " (point of no return)" or "")
  end
  io.stdout:write(string.format("%s: ok: %d phase%s: %s\n", path, #names, #names == 1 and "" or "s",
    table.concat(names, ", ")))
  if not linted then io.stdout:write("(playbooks not checked: the playbooks engine is not in this relua)\n") end
  return 0
end

return M
