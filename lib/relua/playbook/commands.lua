--- relua.playbook.commands: `relua diagnose`, `relua recover` and `relua playbook
-- list|show|lint|new`. The engine (loading, matching, checks) is relua.playbook; resuming
-- is the release engine's (relua.release.execute, handed the ticket's lock).
local core = require "relua.core.ledger"
local errors = require "relua.error"
local json = require "relua.json"
local pb = require "relua.playbook"
local release = require "relua.release"
local ticketlib = require "relua.ticket"

local H = release._internal
local usage, check_ticket, quote_arg, shown, parse_args = H.usage, H.check_ticket, H.quote_arg, H.shown, H.parse_args
local trim = pb._internal.trim

local M = {}

local function say(s) release.say(s) end
local function warn(s) release.complain(s) end

local function load_ticket(id)
  if id == nil then usage("no ticket given") end
  check_ticket(id)
  local t, err, code = ticketlib.load(id)
  if not t then
    if code == "corrupt" then errors.raise("corrupt", err, { exit = 2, hint = "relua left the file untouched" }) end
    usage(err)
  end
  return t
end

local function report_problems(problems)
  for _, p in ipairs(problems) do warn("playbook skipped: " .. pb.format_problem(p)) end
end

-- The folders of RELUA_PLAYBOOKS that are not folders (a typo there hides its playbooks).
local function missing_dirs(found)
  local out = {}
  for _, d in ipairs(found.dirs or {}) do
    if d.source == "RELUA_PLAYBOOKS" and not require("relua.fs").isdir(d.dir) then
      out[#out + 1] = string.format("warning: RELUA_PLAYBOOKS names %s, which is not a folder: nothing is found there", d.dir)
    end
  end
  return out
end

local function indent(text, prefix)
  return prefix .. tostring(text):gsub("%s+$", ""):gsub("\n", "\n" .. prefix)
end

local function where(p)
  return string.format("%s:%d", shown(p.file), p.line or 1)
end

-- What a fix will do, for people.
local function describe_fix(fix, ctx)
  local lines = {}
  if type(fix.describe) == "string" then lines[#lines + 1] = fix.describe
  elseif type(fix.describe) == "function" and ctx then
    local ok, d = pcall(fix.describe, ctx)
    lines[#lines + 1] = ok and tostring(d) or ("(its description failed: " .. tostring(type(d) == "table" and d.message or d) .. ")")
  end
  if type(fix.run) == "table" then
    for _, c in ipairs(fix.run) do lines[#lines + 1] = "run: " .. c end
  elseif type(fix.run) == "function" and #lines == 0 then
    local info = debug.getinfo(fix.run, "S")
    lines[#lines + 1] = string.format("a Lua function (%s:%d)", shown(info.short_src), info.linedefined)
  end
  if fix.adhoc then lines[#lines + 1] = "ad hoc (shown; run only when you say so):\n" .. indent(fix.adhoc, "    ") end
  if fix.bootstrap_script or fix.bootstrap_change then
    lines[#lines + 1] = string.format("permanent fix: %s%s", fix.bootstrap_script or "",
      fix.bootstrap_change and ((fix.bootstrap_script and ": " or "") .. trim(fix.bootstrap_change)) or "")
  end
  if #lines == 0 then lines[1] = "nothing to run (verify, then resume)" end
  return lines
end

-- A context for playbooks: the run context recipes get (r:sh, r:run, r.state, r:env), on
-- the failed phase, with the failure's fields. With lg the state is the ticket's (writes
-- are durable); without, writes are refused (diagnose changes nothing).
local function make_ctx(t, failure, recipe, lg)
  local context = require "relua.release.context"
  local store
  if lg then
    store = context.store_for(lg, lg:state(), false, say)
  else
    local values = t.state.state or {}
    store = {
      get = function(k) return values[k] end,
      set = function(k) error("diagnose changes nothing: cannot set r.state." .. tostring(k), 3) end,
      values = function() return values end,
      step = function(k) return t.state.steps and t.state.steps[k] end,
      record = function(k) error("diagnose changes nothing: cannot record step " .. tostring(k), 3) end,
      log = function() end,
      crash = function() end,
    }
  end
  local ctx = context.new_context({ ticket = t.id, recipe = recipe, dir = t.paths.dir, say = lg and say or warn, store = store })
  if not lg then
    -- diagnose: commands run quietly (their output is judged, not shown) and write nothing
    local function quiet(self, argv, shown_cmd, opts)
      opts = opts or {}
      local res, err, code = require("relua.proc").run(argv, { env = self:env(opts.env), cwd = opts.cwd,
        timeout = opts.timeout or pb.TIMEOUT, stdin = opts.stdin })
      if not res then
        if opts.check == false then return nil, err, code end
        errors.raise("command-failed", shown_cmd .. ": " .. err, { exit = 1 })
      end
      if opts.check ~= false and res.code ~= 0 then
        errors.raise("command-failed", string.format("command exited with %s: %s", tostring(res.code), shown_cmd), { exit = 1 })
      end
      return res
    end
    ctx.sh = function(self, cmd, opts) return quiet(self, { "/bin/sh", "-c", cmd }, cmd, opts) end
    ctx.run = function(self, argv, opts) return quiet(self, argv, table.concat(argv, " "), opts) end
  end
  ctx.phase = failure.phase
  ctx.failure, ctx.rc, ctx.message, ctx.tail, ctx.code = failure, failure.rc, failure.message, failure.tail, failure.code
  ctx.recipe_path = t.state.recipe.path
  return ctx
end

--- The context `relua diagnose` gives playbooks (writes refused, commands quiet); the
--- failure message runs quick detection checks in it too (relua.playbook.hint_status).
---@param t table  {id=, state= (the state document), paths={dir=}}
---@param failure table  relua.playbook.failure's record
---@param recipe table?  the loaded recipe
---@return table
function M.readonly_ctx(t, failure, recipe) return make_ctx(t, failure, recipe, nil) end

local function try_recipe(path)
  local ok, recipe = pcall(release.load_recipe, path)
  if ok then return recipe end
end

-- The matching playbooks with their detection run: confirmed first, then those without
-- detection checks, then those whose detection did not confirm.
local RANK = { confirmed = 1, unconfirmed = 2, ["not matched"] = 3 }
local function diagnose(_, failure, found, ctx, opts)
  local sel = pb.select(found.playbooks, failure)
  for i, m in ipairs(sel) do
    m.order = i
    m.status, m.results = pb.detect(m.playbook, { ctx = ctx, record = opts and opts.record })
  end
  table.sort(sel, function(a, b)
    if RANK[a.status] ~= RANK[b.status] then return RANK[a.status] < RANK[b.status] end
    return a.order < b.order
  end)
  return sel
end

-- "rc=1", or what an interrupted phase (no exit status recorded) was.
local function rc_text(failure)
  return failure.rc and ("rc=" .. tostring(failure.rc)) or "interrupted: the run died"
end

local function failure_lines(failure, add)
  add(string.format("failure: phase %s, %s", failure.phase, rc_text(failure)))
  add("message: " .. tostring(failure.message))
  if failure.code then add("code: " .. failure.code) end
  if failure.hint then add("hint: " .. failure.hint) end
  if failure.tail and failure.tail ~= "" then
    local lines = pb._internal.split_lines((failure.tail:gsub("\n$", "")))
    local first = math.max(1, #lines - 19)
    add(string.format("output (last %d lines):", #lines - first + 1))
    for i = first, #lines do add("  | " .. lines[i]) end
  end
end

local function not_failed(t, what)
  errors.raise("not-failed", string.format("ticket %s has not failed (status: %s): nothing to %s", t.id, t.summary.status, what),
    { exit = 2, hint = "relua status " .. t.id .. " shows where it stands" })
end

--- `relua diagnose TICKET [--json]`
---@return integer
function M.diagnose_command(...)
  local o = parse_args({ ... }, { json = "flag" })
  if #o.positional > 1 then usage("unexpected argument " .. o.positional[2], "usage: relua diagnose TICKET [--json]") end
  local t = load_ticket(o.positional[1])
  local failure = pb.failure(t.state, t.paths.out)
  if not failure or t.holder then not_failed(t, "diagnose") end
  local found = pb.discover({ recipe = t.state.recipe.path })
  report_problems(found.problems)
  local ctx = make_ctx(t, failure, try_recipe(t.state.recipe.path), nil)
  local sel = diagnose(t, failure, found, ctx)
  if o.json then
    local matches = json.array()
    for _, m in ipairs(sel) do
      local p = m.playbook
      local det = json.array()
      for _, r in ipairs(m.results) do det[#det + 1] = { check = pb.describe_check(r.check), passed = r.passed, detail = r.detail } end
      local verify = json.array()
      for _, c in ipairs(p.verify) do verify[#verify + 1] = pb.describe_check(c) end
      matches[#matches + 1] = {
        id = p.id, title = p.title, file = p.file, line = p.line, status = m.status,
        reasons = json.array(m.reasons), detection = det, root_cause = p.root_cause,
        fix = json.array(describe_fix(p.fix, ctx)), verify = verify, resume = p.resume or failure.phase,
      }
    end
    local problems = json.array()
    for _, p in ipairs(found.problems) do problems[#problems + 1] = p end
    io.stdout:write(json.encode({
      ticket = t.id,
      failure = { phase = failure.phase, rc = failure.rc, message = failure.message, code = failure.code,
        hint = failure.hint, tail = failure.tail },
      matches = matches, problems = problems,
      next = #sel > 0 and ("relua recover " .. t.id) or ("relua playbook new ID --from " .. t.id),
    }, { pretty = true }), "\n")
    return 0
  end
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add(string.format("ticket %s failed in phase %s (%s): %s", t.id, failure.phase, rc_text(failure),
    (tostring(failure.message):gsub("\n.*", ""))))
  if #sel == 0 then
    add("no playbook matches this failure.")
    failure_lines(failure, add)
    add(string.format("searched: %s", #found.dirs > 0 and (function()
      local d = {}
      for _, x in ipairs(found.dirs) do d[#d + 1] = shown(x.dir) end
      return table.concat(d, ", ")
    end)() or "(nothing)"))
    add(string.format("once it is fixed, keep the fix as a playbook: relua playbook new ID --from %s", t.id))
    io.stdout:write(require("relua.core.secret").mask(table.concat(lines, "\n")), "\n")
    return 0
  end
  add(string.format("matching playbooks (%d):", #sel))
  for i, m in ipairs(sel) do
    local p = m.playbook
    local label = m.status == "confirmed" and "confirmed"
      or m.status == "unconfirmed" and "symptom matches; it has no detection checks"
      or "not confirmed: its detection did not match"
    add(string.format("%d. %s [%s]%s", i, p.id, label, p.title and ("  " .. p.title) or ""))
    add("   file: " .. where(p))
    add("   symptom: " .. table.concat(m.reasons, ", "))
    for _, r in ipairs(m.results) do
      add(string.format("   detection: %s -> %s", pb.describe_check(r.check), r.detail))
    end
    if p.root_cause then add("   root cause: " .. trim(p.root_cause):gsub("\n%s*", " ")) end
    for j, l in ipairs(describe_fix(p.fix, ctx)) do
      add((j == 1 and "   fix: " or "        ") .. l:gsub("\n", "\n        "))
    end
    for _, c in ipairs(p.verify) do add("   verify: " .. pb.describe_check(c)) end
    add("   resume: phase " .. tostring(p.resume == false and "(none)" or p.resume or failure.phase))
  end
  local best = sel[1]
  if best.status == "not matched" then
    add("no playbook's detection confirmed the failure.")
    failure_lines(failure, add)
    add(string.format("to apply one anyway: relua recover %s --playbook ID", t.id))
  else
    add(string.format("next: relua recover %s%s", t.id, #sel > 1 and (" --playbook " .. best.playbook.id) or ""))
  end
  io.stdout:write(require("relua.core.secret").mask(table.concat(lines, "\n")), "\n")
  return 0
end

-- ------------------------------------------------------------------ recover

local function ask(question)
  io.stdout:write(question, " [y/N] ")
  io.stdout:flush()
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

local function err_text(e)
  if type(e) == "table" then return tostring(e.message or "error") end
  return tostring(e)
end

--- `relua recover TICKET [--playbook ID] [--yes] [--adhoc] [--dry-run]`
---@return integer
function M.recover_command(...)
  local RECOVER_USAGE = "usage: relua recover TICKET [--playbook ID] [--yes] [--adhoc] [--dry-run]"
  local o = parse_args({ ... }, { playbook = "value", yes = "flag", adhoc = "flag", ["dry-run"] = "flag" })
  if #o.positional > 1 then usage("unexpected argument " .. o.positional[2], RECOVER_USAGE) end
  local t = load_ticket(o.positional[1])
  local dry = o["dry-run"]
  local tty = require("relua.proc").isatty(0)
  if t.holder then
    errors.raise("locked", string.format("ticket %s is locked by a running release (pid=%s host=%s)", t.id,
      tostring(t.holder.pid), tostring(t.holder.host)), { exit = 3, hint = "wait for it to finish: relua status " .. t.id })
  end
  local failure = pb.failure(t.state, t.paths.out)
  if not failure then not_failed(t, "recover") end
  if not dry and not o.yes and not tty then
    usage("relua recover changes things and asks first; there is no terminal to ask on",
      "pass --yes to go ahead (relua diagnose " .. t.id .. " shows what it would do; --dry-run too)")
  end
  local path = t.state.recipe.path
  if not io.open(path, "r") then
    usage(string.format("the recipe of ticket %s is gone: %s", t.id, path), "recover resumes the release with its recipe")
  end
  local recipe = release.load_recipe(path)
  local found = pb.discover({ recipe = path })
  report_problems(found.problems)
  local chosen
  if o.playbook then
    chosen = found.by_id[o.playbook]
    if not chosen then
      usage(string.format("no playbook %s on the search path", o.playbook), "relua playbook list shows them")
    end
  elseif #pb.select(found.playbooks, failure) == 0 then
    errors.raise("no-playbook", string.format("no playbook matches the failure of ticket %s (phase %s, %s)", t.id,
      failure.phase, rc_text(failure)), { exit = 1,
      hint = string.format("relua diagnose %s shows the failure; fix it by hand and resume, then keep the fix: relua playbook new ID --from %s", t.id, t.id) })
  end

  local lg
  if not dry then
    local err, code, holder
    lg, err, code, holder = t.store:ledger(t.id)  -- the store the ticket was read from
    if not lg then
      if code == "locked" then
        errors.raise("locked", err, { exit = 3, hint = string.format("one run per ticket: wait for pid %s on %s to finish",
          tostring(holder.pid or "?"), tostring(holder.host or "?")) })
      end
      errors.raise(code or "ledger", err, { exit = code == "corrupt" and 2 or 1 })
    end
    -- Under the lock: the ticket as it is now.
    t.state = lg:state()
    failure = pb.failure(t.state, t.paths.out)
    if not failure then
      lg:close()
      t.summary = ticketlib.summary(t.state)
      not_failed(t, "recover")
    end
  end
  local guard <close> = lg
  local ctx = make_ctx(t, failure, recipe, lg)
  local function log(event, fields)
    if lg then
      fields.phase = failure.phase
      lg:log(event, require("relua.secret").mask_value(fields))
    end
  end

  -- Detection: the chosen playbook's, or each match's in turn until one is confirmed.
  if not dry then ctx.out = t.paths.out .. "/playbook.out" end
  local candidates
  if chosen then
    local _, why = pb.matches(chosen, failure)
    candidates = { { playbook = chosen, reasons = why } }
  else
    candidates = pb.select(found.playbooks, failure)
  end
  local pick
  for _, m in ipairs(candidates) do
    say(string.format("playbook %s: detection", m.playbook.id))
    m.status, m.results = pb.detect(m.playbook, { ctx = ctx, record = false })
    for _, r in ipairs(m.results) do say(string.format("  %s -> %s", pb.describe_check(r.check), r.detail)) end
    log("playbook-detect", { playbook = m.playbook.id, status = m.status })
    if m.status ~= "not matched" and (not pick or (pick.status ~= "confirmed" and m.status == "confirmed")) then pick = m end
    if pick and pick.status == "confirmed" then break end
  end
  if not pick then
    local ids = {}
    for _, m in ipairs(candidates) do ids[#ids + 1] = m.playbook.id end
    log("playbook-failed", { stage = "detect", playbook = table.concat(ids, ","), msg = "detection did not confirm" })
    if lg then lg:close() end
    errors.raise("not-confirmed", string.format("the detection of %s did not confirm the failure of ticket %s: nothing was changed",
      table.concat(ids, ", "), t.id), { exit = 1,
      hint = string.format("relua diagnose %s shows the checks; the ticket is unchanged and resumable", t.id) })
  end
  local p = pick.playbook
  local resume = p.resume
  if resume == nil then resume = failure.phase end
  if resume and not H.find_phase(recipe, resume) then
    log("playbook-failed", { stage = "resume", playbook = p.id, msg = "unknown phase " .. resume })
    errors.raise("playbook", string.format("playbook %s resumes at phase %s, which the recipe does not have", p.id, resume),
      { exit = 2, hint = where(p) })
  end

  -- The plan.
  local resume_cmd = string.format("relua %s %s --from=%s", quote_arg(shown(path)), t.id, tostring(resume))
  say(string.format("plan for ticket %s (failed in phase %s): playbook %s%s", t.id, failure.phase, p.id, p.title and (": " .. p.title) or ""))
  say("  file: " .. where(p))
  if p.root_cause then say("  root cause: " .. trim(p.root_cause):gsub("\n%s*", " ")) end
  for j, l in ipairs(describe_fix(p.fix, ctx)) do say((j == 1 and "  1. fix: " or "          ") .. l:gsub("\n", "\n          ")) end
  if #p.verify == 0 then say("  2. verify: (no checks)") end
  for _, c in ipairs(p.verify) do say("  2. verify: " .. pb.describe_check(c)) end
  say(resume and ("  3. resume: " .. resume_cmd) or "  3. no resume (the playbook says resume = false)")
  if dry then
    say("dry run: nothing was changed")
    return 0
  end
  if not o.yes and not ask("Apply it?") then
    say("nothing was changed")
    lg:close()
    return 1
  end

  local function record(result)
    local list = t.state.state and t.state.state["relua.playbooks"]
    list = type(list) == "table" and list or json.array()
    list[#list + 1] = { id = p.id, file = p.file, phase = failure.phase, at = core.now(), result = result }
    lg:set("relua.playbooks", list, failure.phase)
    t.state = lg:state()
  end
  local function failed(stage, msg)
    log("playbook-failed", { stage = stage, playbook = p.id, msg = msg })
    record(stage .. " failed")
    lg:close()
    errors.raise("playbook-failed", string.format("playbook %s: %s failed: %s", p.id, stage, msg), { exit = 1,
      hint = string.format("the ticket is still failed in phase %s and resumable: fix it by hand and run %s, " ..
        "or run the playbook again: relua recover %s --playbook %s", failure.phase,
        string.format("relua %s %s", quote_arg(shown(path)), t.id), t.id, p.id) })
  end

  -- Fix.
  local fix = p.fix
  local run_adhoc = false
  if fix.adhoc then
    run_adhoc = o.adhoc or (tty and ask("Run the ad hoc commands shown above?"))
    if not run_adhoc then
      say("  the ad hoc fix was not run (pass --adhoc to run it); run it yourself if it applies")
    end
  end
  if fix.run or run_adhoc then
    log("playbook-fix", { playbook = p.id, status = "start" })
    local ok, e = pcall(function()
      if type(fix.run) == "function" then fix.run(ctx)
      elseif type(fix.run) == "table" then
        for _, c in ipairs(fix.run) do ctx:sh(c) end
      end
      if run_adhoc then ctx:sh(fix.adhoc) end
    end)
    if not ok then failed("fix", err_text(e)) end
    log("playbook-fix", { playbook = p.id, status = "done" })
  else
    log("playbook-fix", { playbook = p.id, status = "nothing run" })
  end

  -- Verify.
  log("playbook-verify", { playbook = p.id })
  for _, c in ipairs(p.verify) do
    local passed, detail = pb.run_check(c, { ctx = ctx, timeout = p.timeout, record = true })
    say(string.format("  verify: %s -> %s", pb.describe_check(c), detail))
    if not passed then failed("verify", pb.describe_check(c) .. ": " .. detail) end
  end
  log("playbook-verified", { playbook = p.id })
  record("verified")
  say(string.format("playbook %s: verified", p.id))
  if not resume then
    say(string.format("not resuming (resume = false); continue with: relua %s %s", quote_arg(shown(path)), t.id))
    lg:close()
    return 0
  end
  say(string.format("resuming ticket %s at phase %s", t.id, resume))
  return release.execute({ recipe = recipe, path = shown(path), ticket = t.id, from = resume, ledger = lg })
end

-- ------------------------------------------------------------------ relua status

--- Extra lines for `relua status` of a failed ticket: the hints printed at the failure
--- (the point of no return aware headline, the error's hint, the matching playbooks).
---@param t table  a loaded ticket (relua.ticket.load)
---@return string[]
function M.status_lines(t)
  local failure = pb.failure(t.state, t.paths.out)
  if not failure then return {} end
  local recipe = try_recipe(t.state.recipe.path)
  if recipe then
    t.past_no_return = require("relua.release.noreturn").point(recipe, t.state) ~= nil
  end
  local lines = {}  -- (the failure record itself, hint included, is status's own block)
  local ctx = {
    ticket = t.id, phase = failure.phase, rc = failure.rc, message = failure.message,
    recipe = recipe, recipe_path = t.state.recipe.path, state = t.state,
    resume = string.format("relua %s %s --from=%s", quote_arg(shown(t.state.recipe.path)), t.id, failure.phase),
    revert = "relua revert " .. t.id,
  }
  for _, l in ipairs(release.failure_hints(ctx)) do lines[#lines + 1] = l end
  return lines
end

-- ------------------------------------------------------------------ relua playbook

-- Without --recipe, the current folder's playbooks/ (where `playbook new` writes).
local function sources(o)
  return pb.discover({ recipe = o.recipe, here = true })
end

local function list_cmd(o)
  local found = sources(o)
  report_problems(found.problems)
  for _, w in ipairs(missing_dirs(found)) do warn(w) end
  if #found.playbooks == 0 then
    say("no playbooks found; searched: " .. (function()
      local d = {}
      for _, x in ipairs(found.dirs) do d[#d + 1] = shown(x.dir) end
      return #d > 0 and table.concat(d, ", ") or "(nothing)"
    end)())
    return 0
  end
  local w = 0
  for _, p in ipairs(found.playbooks) do w = math.max(w, #p.id) end
  for _, p in ipairs(found.playbooks) do
    say(string.format("%-" .. w .. "s  %-4s  %-8s  %s  (%s)", p.id, p.format, p.source, p.title or "", where(p)))
  end
  return 0
end

local function symptom_lines(s, add)
  if s.text then
    add("symptom (free text):")
    add(indent(s.text, "    "))
    add("  matches when the output or message holds one of: " .. (#s.quotes > 0 and (function()
      local q = {}
      for _, x in ipairs(s.quotes) do q[#q + 1] = string.format("%q", x) end
      return table.concat(q, ", ")
    end)() or "(nothing: it quotes no error line)"))
  end
  local parts = {}
  if s.phase then parts[#parts + 1] = "phase " .. table.concat(s.phase, "|") end
  if s.rc then
    local r = {}
    for _, n in ipairs(s.rc) do r[#r + 1] = tostring(n) end
    parts[#parts + 1] = "rc " .. table.concat(r, "|")
  end
  if s.code then parts[#parts + 1] = "code " .. table.concat(s.code, "|") end
  for _, k in ipairs({ "message", "output" }) do
    if s[k] then
      local m = {}
      for _, x in ipairs(s[k]) do
        m[#m + 1] = x.plain and string.format("%q", x.plain) or x.pattern and ("pattern " .. string.format("%q", x.pattern)) or "a function"
      end
      parts[#parts + 1] = k .. " " .. table.concat(m, " or ")
    end
  end
  if #parts > 0 then add("symptom: " .. table.concat(parts, ", ")) end
end

local function show_cmd(o)
  local id = o.positional[2]
  if not id then usage("no playbook id given", "usage: relua playbook show ID") end
  local found = sources(o)
  report_problems(found.problems)
  local p = found.by_id[id]
  if not p then usage(string.format("no playbook %s on the search path", id), "relua playbook list shows them") end
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add(string.format("%s%s", p.id, p.title and ("  " .. p.title) or ""))
  add(string.format("file: %s (%s, %s)", where(p), p.format, p.source))
  symptom_lines(p.symptom, add)
  for _, c in ipairs(p.detect) do add("detection: " .. pb.describe_check(c)) end
  if p.root_cause then add("root cause:") add(indent(p.root_cause, "    ")) end
  for j, l in ipairs(describe_fix(p.fix, nil)) do add((j == 1 and "fix: " or "     ") .. l) end
  for _, c in ipairs(p.verify) do add("verify: " .. pb.describe_check(c)) end
  add("resume: " .. (p.resume == false and "(none)" or p.resume or "the failed phase"))
  if #p.services > 0 then add("services: " .. table.concat(p.services, ", ")) end
  if #p.tags > 0 then add("tags: " .. table.concat(p.tags, ", ")) end
  io.stdout:write(table.concat(lines, "\n"), "\n")
  return 0
end

local function lint_cmd(o)
  local paths = {}
  for i = 2, #o.positional do paths[#paths + 1] = o.positional[i] end
  local found
  if #paths > 0 then
    for _, p in ipairs(paths) do
      if not require("relua.fs").exists(p) then usage("no such file or folder: " .. p, "usage: relua playbook lint [PATH...]") end
    end
    found = pb.discover({ paths = paths })
  else
    found = sources(o)
  end
  local errs = 0
  for _, p in ipairs(found.problems) do
    io.stdout:write(pb.format_problem(p), "\n")
    errs = errs + 1
  end
  for _, w in ipairs(missing_dirs(found)) do io.stdout:write(w, "\n") end
  for _, p in ipairs(found.playbooks) do
    local sy = p.symptom
    if #(sy.quotes or {}) == 0 and not (sy.phase or sy.output or sy.message or sy.rc or sy.code) then
      if sy.text then
        io.stdout:write(string.format("%s: warning: %s: the symptom quotes no error line (in `backquotes`, "
          .. "\"double quotes\", or a line starting [ERROR], error:, fatal: or \u{2717}): it can never match\n",
          where(p), p.id))
      else
        io.stdout:write(string.format("%s: warning: %s: the symptom gives nothing to match (phase, rc, code, "
          .. "message or output): it can never match\n", where(p), p.id))
      end
    end
  end
  io.stdout:write(string.format("%d playbook%s checked, %d problem%s\n", #found.playbooks, #found.playbooks == 1 and "" or "s",
    errs, errs == 1 and "" or "s"))
  return errs > 0 and 1 or 0
end

local LUA_SKELETON = [[
-- %s: a recovery playbook (doc/playbooks.md). Fill in what the operator sees, how to
-- confirm it, the cause, the fix and how to verify it; `relua playbook lint` checks it.
return {
  id = %q,
  title = "TODO: one line naming the failure",
  -- What must match the recorded failure (all given): phase, rc, code, message, output.
  -- A string matches as plain text; { match = "..." } is a Lua pattern.
  symptom = {
%s  },
  -- Checks that confirm it (each killed after `timeout`, default 30 s): a command and what
  -- it must print or exit with, or a function(ctx) returning true.
  detect = {
    -- { run = "./status.sh", expect = { output = "healthy" } },
  },
  root_cause = [==[
TODO: why this happens, and which layer is at fault.
]==],
  -- run = "command" | { "cmd1", "cmd2" } | function(ctx) ... end; adhoc = "shown, run only with --adhoc"
  fix = {
    -- run = "TODO",
  },
  verify = {
    -- { run = "./verify.sh", expect = { code = 0 } },
  },
  resume = %q,
  tags = { "release" },
}
]]

local YAML_SKELETON = [[
# %s: a recovery playbook in the recovery/playbooks template (doc/playbooks.md).
- id: %s
  symptom: |
    TODO: what the operator sees. Quote the error lines they will grep for in
    backquotes, e.g.
%s
  detection:
    # - command: ./status.sh
    #   expect: healthy
  root_cause: |
    TODO: why this happens. Be honest about which layer is at fault.
  fix:
    bootstrap_script: TODO file:fn that needs fixing
    bootstrap_change: TODO the permanent fix
    adhoc: |
      # TODO: commands to fix the running environment now (run only with --adhoc)
  verify:
    # - ./verify.sh
  resume: %s
  services: []
  tags: [release]
]]

-- The error line of a failure worth matching on: the message's first line, else the
-- last output line that looks like an error.
local function error_line(failure)
  local msg = trim((tostring(failure.message or ""):gsub("\n.*", "")))
  local out
  for line in (failure.tail or ""):gmatch("[^\n]+") do
    local l = trim(line)
    if l:find("[Ee][Rr][Rr][Oo][Rr]") or l:find("[Ff]ail") or l:find("\u{2717}") or l:find("[Uu]nhealthy") or l:find("[Ff]orbidden") then
      out = l
    end
  end
  return msg, out
end

local function new_cmd(o)
  local id = o.positional[2]
  if not id then usage("no playbook id given", "usage: relua playbook new ID [--from TICKET] [--yaml] [--dir DIR]") end
  if not id:find("^[%w][%w%._%-]*$") then usage(string.format("invalid playbook id %q", id), "use letters, digits, . _ - (e.g. release-verify-race)") end
  local failure, dir = nil, o.dir
  if o.from then
    local t = load_ticket(o.from)
    failure = pb.failure(t.state, t.paths.out)
    if not failure then not_failed(t, "start a playbook from") end
    dir = dir or (pb._internal.dirname(t.state.recipe.path) .. "/playbooks")
  end
  dir = dir or "playbooks"
  local fs = require "relua.fs"
  local path = dir .. "/" .. id .. (o.yaml and ".yaml" or ".lua")
  if fs.exists(path) then usage("the file exists: " .. path, "choose another id, or edit it") end
  local found = pb.discover({ recipe = failure and (dir .. "/x") or nil })
  if found.by_id[id] then usage(string.format("a playbook %s exists: %s", id, where(found.by_id[id])), "ids are unique: choose another") end
  local text
  if o.yaml then
    local quote = "    TODO: the error line"
    if failure then
      local msg, out = error_line(failure)
      local q = {}
      for _, l in ipairs({ msg, out }) do
        if l and l ~= "" and not l:find("`", 1, true) then q[#q + 1] = "    `" .. l .. "`" end
      end
      quote = table.concat(q, "\n")
      if quote == "" then quote = "    TODO: the error line" end
    end
    text = string.format(YAML_SKELETON, id, id, quote, failure and failure.phase or "TODO-phase")
  else
    local sym = '    -- phase = "verify", output = "unhealthy",\n'
    if failure then
      local msg, out = error_line(failure)
      sym = string.format("    phase = %q,\n", failure.phase)
      if failure.rc then sym = sym .. string.format("    rc = %d,\n", failure.rc) end
      if failure.code then sym = sym .. string.format("    code = %q,\n", failure.code) end
      if msg ~= "" then sym = sym .. string.format("    message = %q,\n", msg) end
      if out then sym = sym .. string.format("    output = %q,\n", out) end
    end
    text = string.format(LUA_SKELETON, id, id, sym, failure and failure.phase or "TODO-phase")
  end
  assert(fs.mkdir(dir))
  assert(fs.write(path, text))
  say("wrote " .. path .. (failure and string.format(" (symptom from ticket %s's failure in phase %s)", o.from, failure.phase) or ""))
  say("edit it, then: relua playbook lint " .. path)
  return 0
end

-- `relua playbook list|show|lint|new ...` (two-word commands in relua.cli).
local PB_OPTS = { recipe = "value", from = "value", yaml = "flag", dir = "value" }
local function sub(fn, name)
  return function(...)
    local o = parse_args({ name, ... }, PB_OPTS)
    return fn(o)
  end
end
M.list_command = sub(list_cmd, "list")
M.show_command = sub(show_cmd, "show")
M.lint_command = sub(lint_cmd, "lint")
M.new_command = sub(new_cmd, "new")

return M
