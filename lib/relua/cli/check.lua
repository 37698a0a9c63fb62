--- relua.cli.check: `relua check RECIPE [--from=PHASE [--ticket=T]]` validates a recipe
-- and its playbooks without running anything (like `goreleaser check`): the recipe is
-- loaded with relua's primitives guarded as in a dry run, and every problem is listed, not
-- only the first: unknown keys, bad or duplicate phase names, missing functions, the
-- playbooks' own problems (relua.playbook's lint, when it is there), and every --from a run
-- would be refused: the one given (for ticket T as recorded, with the runner's own rule),
-- and the phase each playbook that applies to this recipe resumes at after the failure it
-- matches (what `relua recover` runs).
local errors = require "relua.error"
local release = require "relua.release"
local core = require "relua.core.ledger"

local M = {}

-- The recipe's phases as a run would see them, each {name=, status=}: the statuses
-- recorded for the ticket (by name; a new phase pending), or a new ticket's.
local function phases_as(recipe, recorded)
  local by_name = {}
  for _, p in ipairs(recorded or {}) do by_name[p.name] = p.status end
  local list = {}
  for i, p in ipairs(recipe.phases) do list[i] = { name = p.name, status = by_name[p.name] or "pending" } end
  return list
end

local function names_of(recipe)
  local names = {}
  for i, p in ipairs(recipe.phases) do names[i] = p.name end
  return table.concat(names, ", ")
end

local function has_phase(recipe, name)
  for _, p in ipairs(recipe.phases) do if p.name == name then return true end end
  return false
end

-- The --from given: a phase of the recipe, and for a ticket one the runner would start at.
local function from_problems(recipe, from, ticket, problems)
  if not has_phase(recipe, from) then
    problems[#problems + 1] = string.format("--from=%s names no phase: the phases are %s", from, names_of(recipe))
    return
  end
  if not ticket then return end
  local st = require("relua.store").open()
  local state, err, code = st:read(ticket)
  st:close()
  if not state and code ~= "ENOENT" then
    problems[#problems + 1] = string.format("ticket %s: %s", ticket, tostring(err))
    return
  end
  local ok, why, hint = core.start(phases_as(recipe, state and state.phases), from)
  if ok == nil then
    problems[#problems + 1] = string.format("--from=%s is unreachable for %s ticket %s: %s (%s)", from,
      state and "the recorded" or "a new", ticket, why, hint)
  end
end

-- The phase each playbook resumes at must be one `relua recover` can start from after the
-- failure the playbook matches: a phase of the recipe, not after the failed phase (every
-- phase before a --from must be done). Checked for the recipe's own playbooks (its
-- playbooks/ folder) and for those whose symptom names a phase of this recipe; a shared
-- playbook that names no phase may be for another recipe.
local function resume_problems(recipe, playbooks, problems)
  for _, pb in ipairs(playbooks) do
    local listed = type(pb.symptom) == "table" and type(pb.symptom.phase) == "table" and pb.symptom.phase or {}
    local phases = {}  -- the failed phases it matches that this recipe has
    for _, name in ipairs(listed) do if has_phase(recipe, name) then phases[#phases + 1] = name end end
    local own = pb.source == "recipe"
    local where = string.format("playbook %s (%s:%d)", pb.id, tostring(pb.file), pb.line or 1)
    if own and #listed > 0 and #phases == 0 then
      problems[#problems + 1] = string.format("%s: its symptom's phase %s is no phase of the recipe, so it never "
        .. "matches: the phases are %s", where, table.concat(listed, ", "), names_of(recipe))
    elseif (own or #phases > 0) and type(pb.resume) == "string" then
      if not has_phase(recipe, pb.resume) then
        problems[#problems + 1] = string.format("%s resumes at phase %s (--from=%s), which the recipe does not have: "
          .. "the phases are %s", where, pb.resume, pb.resume, names_of(recipe))
      else
        for _, phase in ipairs(phases) do
          local after = phases_as(recipe)
          local reached = true
          for _, p in ipairs(after) do  -- the failure it matches: the earlier phases done, that one failed
            if p.name == phase then p.status, reached = "failed", false elseif reached then p.status = "done" end
          end
          local ok, why = core.start(after, pb.resume)
          if ok == nil then
            problems[#problems + 1] = string.format("%s resumes at phase %s after a failure in phase %s: "
              .. "--from=%s is unreachable: %s", where, pb.resume, phase, pb.resume, why)
          end
        end
      end
    end
  end
end

-- The problems of the playbooks the recipe would use (its playbooks/ folder, RELUA_PLAYBOOKS,
-- the shipped set), as the playbooks engine (relua.playbook) finds them when it loads them,
-- then the phases they resume at. Returns the list, and whether the engine was there to look.
local function playbook_problems(path, recipe)
  local ok, pb = pcall(require, "relua.playbook")
  if not ok or type(pb) ~= "table" or type(pb.discover) ~= "function" then return {}, false end
  local ok2, found = pcall(pb.discover, { recipe = path })
  if not ok2 then return { "playbooks: " .. (errors.is(found) and found.message or tostring(found)) }, true end
  local list = {}
  for _, p in ipairs(found.problems or {}) do
    list[#list + 1] = "playbook " .. (pb.format_problem and pb.format_problem(p) or tostring(p.message))
  end
  resume_problems(recipe, found.playbooks or {}, list)
  return list, true
end

--- Checks a recipe file; returns the problems (strings) and the recipe when it loaded.
---@param path string
---@param from string?  a --from to check
---@param ticket string?  check the --from against this ticket's recorded phases
---@return string[] problems
---@return table? recipe
---@return boolean? linted  the playbooks were checked
function M.check(path, from, ticket)
  local chunk, err = loadfile(path)
  if not chunk then return { err } end
  local ok, recipe = require("relua.dryrun").call(function() end, chunk)
  if not ok then
    return { "it raised an error while loading: " .. (errors.is(recipe) and recipe.message or tostring(recipe)) }
  end
  local problems = release.problems(recipe)
  if #problems == 0 and from then from_problems(recipe, from, ticket, problems) end
  local linted
  if #problems == 0 then
    local more
    more, linted = playbook_problems(path, recipe)
    for _, p in ipairs(more) do problems[#problems + 1] = p end
  end
  return problems, recipe, linted
end

--- `relua check RECIPE [--from=PHASE]`
---@return integer
function M.command(...)
  local args, path, from, ticket = { ... }, nil, nil, nil
  for _, a in ipairs(args) do
    local v, t = a:match("^%-%-from=(.*)$"), a:match("^%-%-ticket=(.*)$")
    if v then from = v
    elseif t then ticket = t
    elseif a:sub(1, 1) == "-" then errors.usage("unknown option " .. a)
    elseif path then errors.usage("unexpected argument " .. a)
    else path = a end
  end
  if not path then errors.usage("no recipe given") end
  if ticket and not from then errors.usage("--ticket goes with --from: the ticket a --from is checked against") end
  if ticket and not core.valid_ticket(ticket) then errors.usage("invalid ticket " .. ticket) end
  local f, why = io.open(path, "r")
  if not f then errors.usage("cannot open recipe " .. why) end
  f:close()
  local problems, recipe, linted = M.check(path, from, ticket)
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
