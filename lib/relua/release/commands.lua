--- relua.release.commands: the dry run, `relua revert`, `relua status`, `relua log` and
-- `relua list`. Loaded on demand by relua.release (a normal run does not compile it).
local core = require "relua.core.ledger"
local dryrun = require "relua.dryrun"
local errors = require "relua.error"
local json = require "relua.json"
local release = require "relua.release"
local ticketlib = require "relua.ticket"
local context = require "relua.release.context"
local storelib = require "relua.store"

local H = release._internal
local quote_arg, usage, check_ticket, abspath, shown = H.quote_arg, H.usage, H.check_ticket, H.abspath, H.shown
local recipe_hash, short, one_line, status_of, find_phase = H.recipe_hash, H.short, H.one_line, H.status_of, H.find_phase
local parse_args = H.parse_args
local new_context, store_for, append_out = context.new_context, context.store_for, context.append_out

local M = {}

function M.dry_run(o, recipe, start, state, say)
  say(string.format("dry run of %s for ticket %s: nothing will be changed", o.path, o.ticket))
  local holder = o.store:holder(o.ticket)
  if holder then
    say(string.format("note: a run holds the ticket now (pid=%s host=%s since=%s)",
      tostring(holder.pid), tostring(holder.host), tostring(holder.since)))
  end
  if state and state.steps and next(state.steps) then
    local keys = {}
    for k in pairs(state.steps) do keys[#keys + 1] = k end
    table.sort(keys)
    say("recorded steps (not run again):")
    for _, k in ipairs(keys) do
      say(string.format("  %s (phase %s): %s", k, tostring(state.steps[k].phase),
        json.encode(state.steps[k].result)))
    end
  end
  if not start then
    say(H.nothing_to_do(#recipe.phases, o.ticket))
    return 0
  end
  local r = new_context({
    ticket = o.ticket, dry_run = true, recipe = recipe, say = say,
    dir = (o.store:outdir(o.ticket):match("^(.*)/[^/]*$")) or ".",
    store = store_for(nil, state, true, say),
  })
  for i, p in ipairs(recipe.phases) do
    if i < start then
      say(string.format("phase %s: done, would be skipped", p.name))
    else
      say(string.format("phase %s: would run", p.name))
      r.phase = p.name
      local ok, err = dryrun.call(say, p.run, r)
      if not ok then
        say(string.format("  (the dry run of phase %s stopped early: %s)", p.name,
          one_line(errors.is(err) and err.message or err)))
      end
    end
  end
  return 0
end


function M.revert_command(...)
  local say = release.say
  local o = parse_args({ ... }, { recipe = "value", ["dry-run"] = "flag", json = "flag" })
  if #o.positional ~= 1 then
    usage(#o.positional == 0 and "no ticket given" or "unexpected argument " .. o.positional[2],
      "usage: relua revert TICKET [--recipe=PATH] [--dry-run] [--json]")
  end
  if o.json and o["dry-run"] then usage("--json and --dry-run do not go together: a dry run is for reading") end
  local ticket = o.positional[1]
  check_ticket(ticket)
  local store = storelib.open(o.home)
  local dir = (store:outdir(ticket):match("^(.*)/[^/]*$")) or "."
  local recorded, err, code = store:read(ticket)
  if not recorded then
    if code == "ENOENT" then usage(string.format("no release recorded for ticket %s (looked for %s)", ticket, store:where(ticket))) end
    if code == "corrupt" then errors.raise("corrupt", err, { exit = 2, hint = "relua left the file untouched" }) end
    storelib.fail(err, code)
  end
  local path = o.recipe or recorded.recipe.path
  if not o.recipe then
    local f = io.open(path, "r")
    if not f then
      usage(string.format("the recipe of ticket %s is gone: %s", ticket, path),
        "pass it with: relua revert " .. ticket .. " --recipe=PATH")
    end
    f:close()
  end
  local recipe = release.load_recipe(path)
  -- Past the point of no return nothing is undone: only the phases after it are reverted.
  local noreturn = require "relua.release.noreturn"
  local function todo(state)
    local list = {}
    local stop = noreturn.point(recipe, state) or 0
    for i = #recipe.phases, stop + 1, -1 do
      local p = recipe.phases[i]
      local st = status_of(state, p.name)
      if st == "done" or st == "failed" or st == "running" then list[#list + 1] = p end
    end
    return list
  end
  if o["dry-run"] then
    say(string.format("dry run of the revert of ticket %s: nothing will be changed", ticket))
    local list = todo(recorded)
    if #list == 0 then say("nothing to revert") return 0 end
    local r = new_context({ ticket = ticket, dry_run = true, recipe = recipe, dir = dir, say = say,
      store = store_for(nil, recorded, true, say) })
    for _, p in ipairs(list) do
      if p.revert then
        say(string.format("phase %s: would revert", p.name))
        r.phase = p.name
        local ok, e = dryrun.call(say, p.revert, r)
        if not ok then say("  (the dry run stopped early: " .. one_line(errors.is(e) and e.message or e) .. ")") end
      else
        say(string.format("phase %s: has no revert", p.name))
      end
    end
    return 0
  end
  local lg, lerr, lcode, holder = store:ledger(ticket)
  if not lg then
    if lcode == "locked" then
      errors.raise("locked", lerr, { exit = 3, hint = string.format("wait for pid %s on %s to finish",
        tostring(holder.pid or "?"), tostring(holder.host or "?")) })
    end
    storelib.fail(lerr, lcode)
  end
  local guard <close> = lg
  local state = lg:state()
  local kept, kept_name, kept_why = noreturn.point(recipe, state)
  if kept then
    say(string.format("phase %s is past the point of no return (%s): it and the phases before it are not undone. " ..
      "Retry the same version, or release a new version to change what shipped.", kept_name, kept_why))
    local undoable = false
    for _, p in ipairs(todo(state)) do undoable = undoable or p.revert ~= nil end
    if not undoable then  -- nothing after the point, or nothing there that has a revert
      lg:log("revert-refused", { phase = kept_name, msg = "past the point of no return" })
      lg:close()
      errors.raise("refused", string.format("relua revert %s: nothing can be undone: phase %s is past the point of no return", ticket, kept_name),
        { exit = 3, hint = "retry the same version (it only fills gaps), or release a new version to change what shipped" })
    end
  end
  lg:log("revert-run", { recipe = shown(abspath(path)) })
  local report = H.reporter({ ticket = ticket, path = shown(abspath(path)), json = o.json, what = "revert" })
  local list = todo(state)
  if #list == 0 then
    lg:log("nothing-to-do", { what = "revert" })
    say(string.format("nothing to revert: no phase of ticket %s is done or failed", ticket))
    report:finish(0, lg:state(), { status = "nothing-to-revert", nothing_to_do = true })
    lg:close()
    return 0
  end
  local paths = lg:paths()
  local r = new_context({ ticket = ticket, recipe = recipe, dir = dir, say = say,
    store = store_for(lg, state, false, say) })
  local plan = {}
  for _, p in ipairs(list) do
    report:planned(p.name)
    if not p.revert then
      plan[#plan + 1] = { name = p.name }
      report:skipped(p.name, "no revert")
    else
      plan[#plan + 1] = {
        name = p.name,
        fn = function(ctx)
          ctx.phase = p.name
          ctx.out = paths.out .. "/" .. p.name .. ".out"
          append_out(ctx, string.format("--- %s revert of phase %s ---\n", core.now(), p.name))
          report:start(p.name)
          say(string.format("phase %s: reverting", p.name))
          p.revert(ctx)
          -- The phase is undone: the runner forgets its steps (they run again if the
          -- phase is run again), saved together with the `reverted` status.
          say(string.format("phase %s: reverted", p.name))
          report:done(p.name)
        end,
      }
    end
  end
  -- What will happen, in the order it happens (newest phase first).
  say(string.format("revert of ticket %s, newest phase first:", ticket))
  for _, p in ipairs(list) do
    if p.revert then say(string.format("  %s: revert", p.name))
    else say(string.format("  %s: has no revert: nothing undone, it stays %s", p.name, status_of(state, p.name))) end
  end
  for _, e in ipairs(state.phases) do
    if not find_phase(recipe, e.name) and (e.status == "done" or e.status == "failed" or e.status == "running") then
      say(string.format("phase %s is recorded %s but is not in the recipe any more: relua cannot revert it", e.name, e.status))
    end
  end
  local ok, name, rc, msg = lg:run(plan, r, "revert")
  local after = lg:state()
  lg:close()
  if ok then
    say(string.format("ticket %s reverted", ticket))
    report:finish(0, after)
    return 0
  end
  report:close(name)
  release.complain(require("relua.ci").paint("stderr", "red", string.format("relua: revert of phase %s failed: %s", name, msg)))
  release.complain(string.format("revert failed in phase %s (rc=%d). Fix the cause, then run: relua revert %s", name, rc, ticket))
  local exit = (rc == 130 or rc == 143) and rc or 1
  report:failed(name, rc, msg, "Fix the cause, then run: relua revert " .. ticket)
  report:finish(exit, after, { retry = "relua revert " .. ticket })
  return exit
end

-- ------------------------------------------------------------------ inspection

-- The ticket, or nil when none is recorded and `missing_ok`.
local function load_ticket(id, home, missing_ok)
  if id == nil then usage("no ticket given") end
  check_ticket(id)
  local t, err, code = ticketlib.load(id, { home = home, store = storelib.open(home) })
  if not t then
    if code == "ENOENT" and missing_ok then return nil end
    if code == "corrupt" then
      errors.raise("corrupt", err, { exit = 2, hint = "relua left the file untouched" })
    end
    if code ~= "ENOENT" and code ~= "EINVAL" then storelib.fail(err, code) end
    usage(err)
  end
  return t
end

-- The command to run next, or nil.
local function next_command(t)
  local s = t.summary
  local recipe = quote_arg(shown(t.state.recipe.path))
  if s.status == "running" then return nil end
  if s.status == "done" or s.status == "done with warnings" then return nil end
  if s.status == "failed" or s.status == "interrupted" then
    local undo = "  (or roll back: relua revert " .. t.id .. ")"
    if t.past_no_return == nil then t.past_no_return = require("relua.release.noreturn").ticket_past(t.state) end
    if t.past_no_return then undo = "  (past the point of no return: retry, or release a new version)" end
    return "relua " .. recipe .. " " .. t.id .. " --from=" .. s.phase .. undo
  end
  return "relua " .. recipe .. " " .. t.id
end

-- The delivery control of the ticket's lane (the lane its last run named; "main" before
-- any): {lane=, state=, text=} or {lane=, error=}.
local function lane_control(t)
  local lane
  for _, ev in ipairs(t.log) do
    if ev.event == "run" and ev.lane then lane = ev.lane end
  end
  local control = require "relua.control"
  lane = lane or control.DEFAULT_LANE
  local ok, c = pcall(control.current, lane)
  if not ok then return { lane = lane, error = errors.is(c) and c.message or tostring(c) } end
  return { lane = lane, state = c.state, pauses = c.pauses, recovery = c.recovery, text = control.describe(c) }
end

--- `relua status TICKET [--json]`
---@return integer
function M.status_command(...)
  local o = parse_args({ ... }, { json = "flag" })
  local t = load_ticket(o.positional[1], o.home, o.json)
  if not t then  -- --json: a program asking about a ticket never run gets an answer, not an error
    io.stdout:write(json.encode({ ticket = o.positional[1], status = "none", phases = json.array() }, { pretty = true }), "\n")
    return 0
  end
  local ctl = lane_control(t)
  local st, s = t.state, t.summary
  local current = recipe_hash(st.recipe.path, st.recipe)
  local file_changed = current ~= nil and current ~= st.recipe.sha256
  if o.json then
    local out = {
      ticket = t.id, status = s.status, phases = st.phases, state = st.state or {},
      steps = st.steps or {}, recipe = st.recipe, updated = st.updated, holder = t.holder,
      next = next_command(t),
      recipe_file_changed = file_changed,
      control = { lane = ctl.lane, state = ctl.state, error = ctl.error,
        pauses = ctl.pauses and json.array(ctl.pauses), recovery = ctl.recovery },
    }
    if s.phase then out.failed = { phase = s.phase, rc = s.rc, msg = s.msg } end
    if #t.unrecorded > 0 then out.unrecorded = json.array(t.unrecorded) end
    if core.edited(st) then out.edited = true end
    if s.warnings and #s.warnings > 0 then out.warnings = json.array(s.warnings) end
    io.stdout:write(json.encode(out, { pretty = true }), "\n")
    return 0
  end
  local lines = {}
  local function add(...) lines[#lines + 1] = string.format(...) end
  local head = s.status
  if s.status == "failed" then head = string.format("failed in phase %s (rc=%s)", s.phase, tostring(s.rc))
  elseif s.status == "interrupted" and t.unrecorded[1] and t.unrecorded[1].phase == s.phase then
    head = string.format("stopped in phase %s: the run could not record how it ended", s.phase)
  elseif s.status == "interrupted" then head = string.format("interrupted in phase %s (the run died; the phase did not finish)", s.phase)
  elseif s.status == "running" then
    head = string.format("running now (pid=%s host=%s since=%s)", tostring(t.holder.pid), tostring(t.holder.host), tostring(t.holder.since))
  end
  add("ticket %s: %s", t.id, head)
  if core.edited(st) then
    add("  warning: the state file %s was edited outside relua: its recorded phases no longer match the check relua wrote with them", t.paths.state)
    add("  a run goes on from the file as it is; if a phase it says is done did not finish, run it again with --from=PHASE (or restore the file)")
  else
    for i = #t.log, 1, -1 do
      if t.log[i].event == "state-edited" then
        add("  note: the state file was found edited outside relua by the run of %s (relua log %s)", tostring(t.log[i].time), t.id)
        break
      end
    end
  end
  for _, u in ipairs(t.unrecorded) do  -- the store refused the run's last write (a full disk)
    if u.event == "failed" then
      if u.msg == u.cause then
        add("  phase %s failed at %s (rc=%s: %s), and the run could not record it", u.phase, tostring(u.time),
          tostring(u.rc), one_line(u.msg))
      else
        add("  phase %s failed at %s (rc=%s: %s), but the run could not record it: %s", u.phase, tostring(u.time),
          tostring(u.rc), one_line(u.msg), one_line(u.cause))
      end
      add("  the next run records it failed and runs it again")
    else
      add("  phase %s finished at %s, but the run could not record it: %s", u.phase, tostring(u.time), one_line(u.cause))
      add("  the next run runs it again")
    end
  end
  for _, w in ipairs(s.warnings or {}) do
    add("  warning: fallback target %s: %s %s%s", w.target, w.artifact, w.status,
      (w.detail and w.detail ~= "") and (" (" .. one_line(w.detail) .. ")") or "")
  end
  add("recipe: %s%s (sha256 %s)", shown(st.recipe.path), st.recipe.name and " [" .. st.recipe.name .. "]" or "", short(st.recipe.sha256))
  if st.recipe.previous_sha256 then
    add("  the recipe changed during this release (%s: sha256 %s -> %s)", tostring(st.recipe.changed),
      short(st.recipe.previous_sha256), short(st.recipe.sha256))
  end
  if file_changed then
    add("  the recipe file has changed since the last run (now sha256 %s)", short(current))
  elseif current == nil then
    add("  the recipe file is gone")
  end
  add("phases:")
  local width = 0
  for _, p in ipairs(st.phases) do width = math.max(width, #p.name) end
  for _, p in ipairs(st.phases) do
    local extra = ""
    if p.status == "failed" then extra = string.format("  rc=%s  %s", tostring(p.rc), one_line(p.msg))
    elseif p.status == "done" then extra = "  " .. tostring(p.finished or "")
    elseif p.status == "reverted" then extra = "  " .. tostring(p.reverted or "") end
    if p.revert_rc then extra = extra .. string.format("  (revert failed rc=%d: %s)", p.revert_rc, one_line(p.revert_msg)) end
    if extra == "" then add("  %-9s %s", p.status, p.name)
    else add("  %-9s %-" .. width .. "s%s", p.status, p.name, extra) end
  end
  for _, p in ipairs(st.phases) do
    local f = p.status == "failed" and p.failure
    if f then
      add("failure of phase %s: rc=%s%s", p.name, tostring(f.rc), f.code and ("  code=" .. f.code) or "")
      add("  message: %s", one_line(f.message))
      if f.hint then add("  hint: %s", one_line(f.hint)) end
      if f.tail then
        local tail_lines = {}
        for l in (f.tail .. "\n"):gmatch("([^\n]*)\n") do tail_lines[#tail_lines + 1] = l end
        if tail_lines[#tail_lines] == "" then tail_lines[#tail_lines] = nil end
        add("  output (last %d line%s):", #tail_lines, #tail_lines == 1 and "" or "s")
        for _, l in ipairs(tail_lines) do add("    | %s", l) end
      end
    end
  end
  local keys = {}
  local published = st.state and st.state.publish  -- relua.publish.targets' results: a table below
  for k in pairs(st.state or {}) do
    if not (k == "publish" and type(published) == "table") then keys[#keys + 1] = k end
  end
  table.sort(keys)
  if #keys > 0 then
    add("state:")
    for _, k in ipairs(keys) do add("  %s = %s", k, json.encode(st.state[k])) end
  end
  if type(published) == "table" then
    local targets = require "relua.publish.targets"
    add("publish:")
    for _, line in ipairs(targets.text_table(targets.rows(published))) do add("  %s", line) end
  end
  local steps = {}
  for k, e in pairs(st.steps or {}) do steps[#steps + 1] = k .. " (" .. tostring(e.phase) .. ")" end
  table.sort(steps)
  if #steps > 0 then add("steps recorded: %s", table.concat(steps, ", ")) end
  if s.phase then
    local out = t.paths.out .. "/" .. s.phase .. ".out"
    local f = io.open(out, "r")
    if f then
      f:close()
      add("output of phase %s: %s", s.phase, out)
    end
  end
  if s.status == "failed" or s.status == "interrupted" then  -- the hints printed at the failure
    for _, l in ipairs(require("relua.playbook.commands").status_lines(t)) do add("%s", l) end
  end
  if ctl.error then add("control: lane %s: unreadable: %s", ctl.lane, ctl.error)
  else
    for line in ctl.text:gmatch("[^\n]+") do add("%s%s", line:match("^lane ") and "control: " or "         ", line) end
  end
  local nxt = next_command(t)
  if nxt then add("next: %s", nxt) end
  io.stdout:write(table.concat(lines, "\n"), "\n")
  return 0
end

--- `relua log TICKET [--json]`: the audit log as written, or one JSON object per line.
---@return integer
function M.log_command(...)
  local o = parse_args({ ... }, { json = "flag" })
  local t = load_ticket(o.positional[1], o.home)
  if o.json then
    for _, ev in ipairs(t.log) do io.stdout:write(json.encode(ev), "\n") end
    return 0
  end
  io.stdout:write(t.events_text)
  return 0
end

--- `relua list`: every ticket and its status.
---@return integer
function M.list_command(...)
  local o = parse_args({ ... }, { json = "flag" })
  local store = storelib.open(o.home)
  local items = ticketlib.list({ store = store })
  if o.json then
    io.stdout:write(json.encode(json.array(items), { pretty = true }), "\n")
    return 0
  end
  if #items == 0 then
    io.stdout:write("no releases recorded in " .. store:describe() .. "\n")
    return 0
  end
  for _, it in ipairs(items) do
    local what = it.status
    if it.status == "failed" then what = string.format("failed in %s (rc=%s)", it.phase, tostring(it.rc))
    elseif it.status == "interrupted" then what = "interrupted in " .. tostring(it.phase)
    elseif it.error then what = "unreadable: " .. it.error end
    io.stdout:write(string.format("%-20s %-32s %s\n", it.ticket, what, it.updated or ""))
  end
  return 0
end

return M
