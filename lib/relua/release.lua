--- relua.release: the release engine's policy. A recipe is a table of ordered phases;
-- `relua RECIPE TICKET` runs them for a ticket. What must hold whatever a recipe does (the
-- lock, the state file, the audit log, the phase runner that halts on failure) is C, in
-- host/ledger*.c (relua.core.ledger) over the store of host/store.h; C decides where a
-- run starts and what runs. This file builds the `r` context recipes use, and prints what
-- happened and what to do next.
local core = require "relua.core.ledger"
local errors = require "relua.error"
local fsc = require "relua.core.fs"  -- cwd only: relua.fs loads libcrypto, not needed on a no-op run
local json = require "relua.json"
local schema = require "relua.release.schema"
local mask = require("relua.core.secret").mask
local storelib = require "relua.store"

local M = {}

--- Where progress goes (stdout, secrets masked); specs may replace it.
---@param s string
function M.say(s)
  io.stdout:write(mask(s), "\n")
  io.stdout:flush()
end

--- Where failures and hints go (stderr, secrets masked).
---@param s string
function M.complain(s)
  io.stderr:write(mask(s), "\n")
  io.stderr:flush()
end

-- A phase's error with secrets masked, before the ledger records it: a structured error
-- keeps its fields; anything else becomes {message=, traceback=} (as the runner makes it).
local function masked_error(e)
  if type(e) ~= "table" then
    local msg = type(e) == "string" and e or tostring(e)
    return { message = mask(msg), traceback = mask(debug.traceback(nil, 2)) }
  end
  for _, k in ipairs({ "message", "hint", "traceback" }) do
    if type(rawget(e, k)) == "string" then rawset(e, k, mask(rawget(e, k))) end
  end
  return e
end
M.masked_error = masked_error

-- ------------------------------------------------------------------ hints

--- Functions that add lines to the message printed when a release halts. Each is called
--- as fn(ctx) with ctx = {ticket=, phase=, rc=, message=, recipe=, recipe_path=, state=,
--- resume=, revert=} and returns nil, a string or a list of strings. The playbooks
--- module registers its "matching playbooks" here.
M.hints = {}

--- Registers a hint provider (see M.hints).
---@param fn fun(ctx:table):(string|string[]|nil)
function M.add_hint(fn)
  assert(type(fn) == "function", "add_hint: a function is expected")
  M.hints[#M.hints + 1] = fn
end

--- The lines printed after a failure: the resume/revert line, then each provider's.
---@param ctx table
---@return string[]
function M.failure_hints(ctx)
  -- The first line knows the point of no return; the playbooks register their hint on load.
  local lines = { require("relua.release.noreturn").headline(ctx) }
  pcall(require, "relua.playbook")
  for _, fn in ipairs(M.hints) do
    local ok, more = pcall(fn, ctx)
    if ok and type(more) == "string" then lines[#lines + 1] = more
    elseif ok and type(more) == "table" then
      for _, l in ipairs(more) do lines[#lines + 1] = tostring(l) end
    elseif not ok then
      lines[#lines + 1] = "(a hint provider failed: " .. tostring(more) .. ")"
    end
  end
  return lines
end

-- ------------------------------------------------------------------ helpers

local function quote_arg(s)
  if s:match("^[%w%./_%-=:,+@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function usage(message, hint) errors.usage(message, hint) end

local function check_ticket(t)
  if t == nil then
    usage("no ticket given", "usage: relua RECIPE TICKET [--from=PHASE] [--dry-run]")
  end
  if not core.valid_ticket(t) then
    usage(string.format("invalid ticket %q", t),
      "a ticket is 1-64 characters of A-Z a-z 0-9 . _ - (not . or ..)")
  end
end

-- An absolute path with "." and ".." folded (no symlinks resolved).
local function abspath(p)
  if p:sub(1, 1) ~= "/" then p = fsc.cwd() .. "/" .. p end
  local parts = {}
  for seg in p:gmatch("[^/]+") do
    if seg == ".." then parts[#parts] = nil
    elseif seg ~= "." then parts[#parts + 1] = seg end
  end
  return "/" .. table.concat(parts, "/")
end

-- Shown paths: relative to the working directory when under it.
local function shown(p)
  local cwd = fsc.cwd()
  if cwd and p:sub(1, #cwd + 1) == cwd .. "/" then return p:sub(#cwd + 2) end
  return p
end

-- The recipe's sha256. The file's identity (device, inode, size, mtime, ctime) is checked
-- first against the one recorded with `known` (the recorded hash): unchanged, the recorded
-- hash stands and the file is not read (a no-op re-run then never loads libcrypto).
local function recipe_hash(path, recorded)
  local id = core.fingerprint(path)
  if id and recorded and recorded.fingerprint == id and recorded.sha256 then
    return recorded.sha256, id
  end
  local hash, err = require("relua.fs").digest(path, "sha256")
  return hash, hash and id or err
end

local function short(h) return h and h:sub(1, 12) or "?" end

local function one_line(s)
  s = tostring(s or "")
  return (s:gsub("\n.*", ""))
end

-- "nothing to do: all 4 phases of ticket X are done", "... the 1 phase of ticket X is done"
local function nothing_to_do(n, ticket)
  return string.format("nothing to do: %s of ticket %s %s done", n == 1 and "the 1 phase" or "all " .. n .. " phases",
    ticket, n == 1 and "is" or "are")
end

-- What a run tells a reader besides its progress lines: CI groups and annotations, the
-- job summary, --json (relua.release.report); loaded only when there is such a reader.
local QUIET = setmetatable({}, { __index = function() return function() end end })
local function reporter(o)
  if o.json or os.getenv("GITHUB_ACTIONS") == "true" or os.getenv("GITLAB_CI") == "true" then
    return require("relua.release.report").new(o)
  end
  return QUIET
end

-- ------------------------------------------------------------------ recipes

local PHASE_NAME = "^[%w%._%-]+$"

--- Every problem of a recipe, in order (an empty list: it is valid). The structural ones
--- (not a table, no phases, phases not a list) end the list: nothing after them can be
--- checked. `relua check` prints them all; M.validate raises the first.
---@param recipe any
---@return string[]
function M.problems(recipe)
  local list = {}
  local function bad(what) list[#list + 1] = what end
  if type(recipe) ~= "table" then
    bad("it returns " .. (recipe == nil and "nothing" or "a " .. type(recipe)) .. ", not a table of phases")
    return list
  end
  local phases = recipe.phases
  if phases == nil and recipe[1] ~= nil then
    bad("it has no phases (the list of phases goes in phases = { ... })")
    return list
  end
  local key, advice = schema.unknown(schema.recipe, recipe)
  if key then bad(string.format("unknown key %s (%s)", key, advice)) end
  if recipe.preflight ~= nil and type(recipe.preflight) ~= "table" then
    bad("preflight must be a list of checks (see doc/preflight.md)")
  end
  if recipe.lane ~= nil and not require("relua.control.gate").valid_lane(recipe.lane) then
    bad(string.format("invalid lane %q (use 1-64 characters of A-Z a-z 0-9 . _ -)", tostring(recipe.lane)))
  end
  if recipe.sha ~= nil and type(recipe.sha) ~= "function" then
    bad("sha must be a function(r) returning the release's commit id")
  end
  if phases == nil then bad("it has no phases") return list end
  if type(phases) ~= "table" then bad("phases is a " .. type(phases) .. ", not a list") return list end
  for k in pairs(phases) do
    if math.type(k) ~= "integer" or k < 1 or k > #phases then
      bad("phases must be a list (found the key " .. tostring(k) .. ")")
      return list
    end
  end
  if #phases == 0 then bad("phases is empty") return list end
  local seen = {}
  for i, p in ipairs(phases) do
    if type(p) ~= "table" then bad(string.format("phase %d is a %s, not a table", i, type(p)))
    else
      local name = p.name
      if name == nil then bad(string.format("phase %d has no name", i))
      elseif type(name) ~= "string" or #name > 64 or not name:match(PHASE_NAME) then
        bad(string.format("phase %d has an invalid name %q (use 1-64 characters of A-Z a-z 0-9 . _ -)", i, tostring(name)))
      elseif seen[name] then bad(string.format("phase %s appears twice (phases %d and %d)", name, seen[name], i))
      else seen[name] = i end
      local shown_name = type(name) == "string" and name or tostring(i)
      if type(p.run) ~= "function" then
        bad(string.format("phase %s has no run function", shown_name))
      end
      if p.revert ~= nil and type(p.revert) ~= "function" then
        bad(string.format("phase %s: revert must be a function", shown_name))
      end
      key, advice = schema.unknown(schema.phase, p)
      if key then bad(string.format("phase %s: unknown key %s (%s)", shown_name, key, advice)) end
    end
  end
  return list
end

--- Checks a recipe; raises a usage error (exit 2) naming the file and the first problem.
---@param recipe any
---@param path string
---@return table recipe
function M.validate(recipe, path)
  local first = M.problems(recipe)[1]
  if first then
    usage(string.format("invalid recipe %s: %s", path, first),
      "a recipe returns { phases = { { name = \"prepare\", run = function(r) ... end }, ... } } (see doc/recipes.md)")
  end
  return recipe
end

--- `relua FILE TICKET ...` with a file that is not a recipe. A file run with a ticket as
--- its first argument is held to the recipe contract when it looks meant as one: it does
--- not parse (syntax_err), returns a value that is not a recipe, is empty, or defines
--- phases without returning them. Those are usage errors (exit 2) saying what a recipe
--- returns; a script that takes arguments and returns nothing runs as before.
---@param path string
---@param result any what the file returned
---@param syntax_err string? loadfile's message
function M.check_script(path, result, syntax_err, ...)
  local first = ...
  if type(first) ~= "string" or first:sub(1, 1) == "-" or not core.valid_ticket(first) then return end
  local hint = "a recipe returns { phases = { { name = \"prepare\", run = function(r) ... end }, ... } } (see doc/recipes.md)"
  if syntax_err then usage(string.format("invalid recipe %s: %s", path, syntax_err), hint) end
  if type(result) == "table" then M.validate(result, path) end   -- names what is wrong
  if result ~= nil then
    usage(string.format("%s was run with the ticket %s but returned a %s, not a recipe", path, first,
      type(result)), hint)
  end
  local f = io.open(path, "r")
  local src = f and f:read("a") or ""
  if f then f:close() end
  local code = src:gsub("^#![^\n]*", ""):gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")
  if not code:find("%S") then
    usage(string.format("%s was run with the ticket %s but is empty", path, first), hint)
  end
  if src:find("phases%s*=") then
    usage(string.format("%s was run with the ticket %s but returned nothing: it defines phases "
      .. "without returning them (end it with return { phases = ... })", path, first), hint)
  end
end

--- Loads and validates a recipe file; any problem is a usage error (exit 2).
---@param path string
---@return table recipe
function M.load_recipe(path)
  local f, why = io.open(path, "r")
  if not f then usage("cannot open recipe " .. why) end
  f:close()
  local chunk, err = loadfile(path)
  if not chunk then usage(string.format("invalid recipe %s: %s", path, err)) end
  local ok, recipe = pcall(chunk)
  if not ok then
    usage(string.format("invalid recipe %s: it raised an error while loading: %s", path,
      errors.is(recipe) and recipe.message or tostring(recipe)))
  end
  return M.validate(recipe, path)
end

-- ------------------------------------------------------------------ runs

local function find_phase(recipe, name)
  for i, p in ipairs(recipe.phases) do
    if p.name == name then return i, p end
  end
end

-- The phases of a ticket's first run, all pending.
local function fresh_phases(recipe)
  local phases = json.array()
  for i, p in ipairs(recipe.phases) do phases[i] = { name = p.name, status = "pending" } end
  return phases
end

-- The state of a ticket's first run.
local function fresh_state(ticket, recipe, path, hash)
  local phases = fresh_phases(recipe)
  return {
    schema = core.SCHEMA, ticket = ticket, created = core.now(),
    recipe = { path = path, sha256 = hash, name = recipe.name },
    phases = phases, state = {}, steps = {},
  }
end

-- Brings a recorded state in line with the recipe: phases in the recipe's order, keeping
-- the status of those with the same name. Returns the names of phases that disappeared,
-- and whether anything changed.
local function sync_phases(state, recipe)
  local by_name, gone = {}, {}
  for _, p in ipairs(state.phases) do by_name[p.name] = p end
  local phases = json.array()
  for i, p in ipairs(recipe.phases) do
    phases[i] = by_name[p.name] or { name = p.name, status = "pending" }
    by_name[p.name] = nil
  end
  for name in pairs(by_name) do gone[#gone + 1] = name end
  table.sort(gone)
  local reshaped = #gone > 0 or #phases ~= #state.phases
  for i, p in ipairs(phases) do
    if state.phases[i] ~= p then reshaped = true end
  end
  state.phases = phases
  state.state = state.state or {}
  state.steps = state.steps or {}
  return gone, reshaped
end

local function status_of(state, name)
  for _, p in ipairs(state.phases) do
    if p.name == name then return p.status, p end
  end
  return "pending"
end

-- Which phase a run starts at, as the core decides it (core.start): its index, or nil when
-- every phase is done. A --from that is not a phase, or whose earlier phases are not all
-- done, is a usage error.
local function start_index(phases, from)
  local i, err, hint = core.start(phases, from)
  if i == nil then usage(err, hint) end
  return i or nil
end

-- A ticket stays with the recipe that started it (by name): another recipe is refused.
local function check_recipe(state, recipe, ticket)
  local was = state.recipe.name
  if was ~= nil and was ~= recipe.name then
    errors.raise("recipe-mismatch", string.format("ticket %s belongs to recipe %s, not %s", ticket,
      was, recipe.name or "(a recipe without a name)"), { exit = 2,
      hint = string.format("a ticket is released by one recipe: use a new ticket, or run %s again (%s)",
        was, state.recipe.path) })
  end
end

-- A recipe that removed or reordered recorded phases (relua.release.reshape) is refused
-- unless o.accept_recipe_change; returns the accepted changes (nil when there are none).
local function check_reshape(o, state, recipe)
  local reshape = require "relua.release.reshape"
  local lines = reshape.changes(state.phases, recipe)
  if #lines == 0 then return nil end
  if not o.accept_recipe_change then
    reshape.refuse(o.ticket, lines, "relua " .. quote_arg(o.path) .. " " .. o.ticket
      .. (o.from and (" --from=" .. quote_arg(o.from)) or ""))
  end
  return lines
end

local function parse_args(args, allowed)
  local o = { positional = {} }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--store" then  -- every ledger command takes --store=URL
      a = "--store=" .. tostring(args[i + 1])
      i = i + 1
    end
    if a:match("^%-%-store=") then
      storelib.url = a:match("^%-%-store=(.*)$")
      if storelib.url == "" then usage("--store needs a URL") end
      a = nil
    end
    local name, value
    if a then name, value = a:match("^%-%-([%w%-]+)=(.*)$") end
    if a == nil then
      i = i + 1  -- --store: taken above
      goto continue
    end
    if name then
      if not allowed[name] or allowed[name] ~= "value" then usage("unknown option " .. a) end
      o[name] = value
    elseif a:match("^%-%-") then
      local n = a:sub(3)
      if allowed[n] == "flag" then o[n] = true
      elseif allowed[n] == "value" then
        i = i + 1
        if args[i] == nil then usage(a .. " needs a value") end
        o[n] = args[i]
      else
        usage("unknown option " .. a)
      end
    else
      o.positional[#o.positional + 1] = a
    end
    i = i + 1
    ::continue::
  end
  return o
end

-- A state whose recorded phases were changed outside relua (core.edited: they no longer
-- match the check relua wrote with them, e.g. a failed phase set to done by hand): said on
-- stderr, and logged when lg (the run's ledger) is given. The run goes on from the file.
local function warn_edited(store, ticket, state, lg)
  if not core.edited(state) then return end
  M.complain(string.format("relua: warning: the state file %s was edited outside relua: its recorded phases "
    .. "no longer match the check relua wrote with them", store:where(ticket)))
  M.complain("  relua goes on from the file as it is; if a phase it says is done did not finish, run it again "
    .. "with --from=PHASE (or restore the file)")
  if lg then  -- kept in the log; the state is written again with its check (said once)
    lg:log("state-edited", { file = store:where(ticket) })
    lg:save()
  end
end

-- Phases the last run left `running` because the store refused to record how they ended
-- (a full disk): the audit log says it (relua.ticket.unrecorded). A failure is recorded
-- now, with its reason (lg:settle); a finish is said: the phase runs again. Returns the
-- state to go on with.
local function settle(lg, store, ticket, state, say)
  local any = false
  for _, p in ipairs(state.phases) do any = any or p.status == "running" end
  if not any then return state end
  local text = store:events(ticket)
  if not text then return state end
  local tk = require "relua.ticket"
  local log = {}
  for line in text:gmatch("[^\n]+") do log[#log + 1] = tk.parse_line(line) end
  local found = tk.unrecorded(state, log)
  for _, u in ipairs(found) do
    if u.event == "failed" then
      lg:settle(u.phase, { rc = u.rc, msg = u.msg, cause = u.cause })
      say(string.format("note: phase %s failed in the last run (rc=%s: %s)%s; recorded now", u.phase, tostring(u.rc),
        one_line(u.msg), u.msg == u.cause and ", which could not record it" or
        ", which could not record it (" .. one_line(u.cause) .. ")"))
    else
      say(string.format("note: phase %s finished in the last run, which could not record it (%s); it runs again",
        u.phase, one_line(u.cause)))
    end
  end
  return #found > 0 and lg:state() or state
end

-- A phase's end the store refused to record (record_outcome in host/ledger_run.c: a full
-- disk): says what happened, where it is kept and what to do. Returns the exit status.
local function unrecorded(o, e, report)
  report:close(e.phase)
  M.complain(require("relua.ci").paint("stderr", "red", "relua: " .. e.message))
  if e.outcome == "failed" and e.reason and e.reason ~= e.cause then
    M.complain("  the phase failed with: " .. one_line(e.reason))
  end
  M.complain(string.format("  the ticket's state keeps the last state recorded (phase %s: running); nothing is half-written", e.phase))
  M.complain(e.logged and string.format("  what happened is kept in the audit log (relua log %s); the next run and relua status %s say it", o.ticket, o.ticket)
    or "  the audit log could not be written either: this message is the only record of it")
  local cmd = "relua " .. quote_arg(o.path) .. " " .. o.ticket
  local dir = e.cause:match("the state file (/.*)/[^/]*: ") or e.cause:match("the audit log (/.*)/[^/]*: ")
  local hint = "fix the cause above, then run the release again: " .. cmd
  if e.cause:find("No space left on device", 1, true) or e.cause:find("Disk quota exceeded", 1, true) then
    hint = string.format("free space %s, then run the release again: %s", dir and ("on the file system of " .. dir
      .. " (df -h " .. quote_arg(dir) .. ")") or "where the ledger is kept", cmd)
  elseif e.cause:find("File too large", 1, true) then
    hint = "raise the file-size limit (ulimit -f), then run the release again: " .. cmd
  end
  M.complain(hint)
  report:failed(e.phase, 1, e.message, hint)
  report:finish(1, (o.store:read(o.ticket)), { resume = cmd })
  return 1
end

local RUN_USAGE = "usage: relua RECIPE TICKET [--from=PHASE] [--dry-run] [--json] [--accept-recipe-change]"

-- The dry run: reads the ledger (no lock, no writes) and runs the phases that would run
-- with an r whose state writes, steps and processes only say what they would do.
local function release_ctx(o, name, rc, msg, state)
  local cmd = "relua " .. quote_arg(o.path) .. " " .. o.ticket .. " --from=" .. name
  return {
    ticket = o.ticket, phase = name, rc = rc, message = msg, recipe = o.recipe,
    recipe_path = o.path, state = state, resume = cmd, revert = "relua revert " .. o.ticket,
  }
end

--- Runs a release. opts: recipe (validated table), path (as the user gave it), ticket,
--- from, dry_run, json, accept_recipe_change, home, store_url (home and store_url: see
--- relua.store.open; the specs' sandboxes). Returns the exit status (0 done or nothing to do, 1 a phase
--- failed, 130 interrupted, 143 terminated); raises structured errors for usage (2) and refusal (3).
---@param o table
---@return integer
function M.execute(o)
  local say = o.say or M.say
  check_ticket(o.ticket)
  local recipe = o.recipe
  local store = storelib.open(o.home, o.store_url)
  o.store = store
  local abs = abspath(o.path)

  if o.dry_run then
    local state, err, code = store:read(o.ticket)
    if not state and code ~= "ENOENT" then
      if code == "corrupt" then errors.raise("corrupt", err, { exit = 2, hint = "the file was left untouched" }) end
      storelib.fail(err, code)
    end
    if state then
      warn_edited(store, o.ticket, state)
      check_recipe(state, recipe, o.ticket)
      check_reshape(o, state, recipe)
      sync_phases(state, recipe)
    end
    local start = start_index(state and state.phases or fresh_phases(recipe), o.from)
    return require("relua.release.commands").dry_run(o, recipe, start, state, say)
  end
  local report = reporter({ ticket = o.ticket, path = o.path, json = o.json })

  -- o.ledger: a caller that already holds the ticket's lock (relua recover) hands it over.
  local lg, err, code, holder = o.ledger, nil, nil, nil
  if not lg then lg, err, code, holder = store:ledger(o.ticket) end
  if not lg then
    if code == "locked" then
      errors.raise("locked", err, { exit = 3,
        hint = string.format("one run per ticket: wait for pid %s on %s to finish (relua status %s shows its progress)",
          tostring(holder.pid or "?"), tostring(holder.host or "?"), o.ticket) })
    elseif code == "corrupt" then
      errors.raise("corrupt", err, { exit = 2,
        hint = "relua left the file untouched: inspect it, restore it, or move it away to start the ticket afresh" })
    end
    storelib.fail(err, code)
  end
  local guard <close> = lg  -- the lock goes whatever happens below
  local state = lg:state()
  if state then
    warn_edited(store, o.ticket, state, lg)
    state = settle(lg, store, o.ticket, state, say)
  end
  -- Admission: the recipe's lane's delivery controls (relua.control, doc/controls.md).
  local ok, admitted = pcall(require("relua.control.gate").admission, recipe, o.ticket, state and state.state, store)
  if not ok then
    if state and errors.is(admitted) and admitted.exit == 3 then lg:log("refused", { msg = admitted.message }) end
    error(admitted, 0)
  end
  local hash, fingerprint = recipe_hash(abs, state and state.recipe.path == abs and state.recipe or nil)
  if not hash then usage("cannot read recipe " .. fingerprint) end
  local fields = { recipe = shown(abs), sha256 = hash, from = o.from }
  local run_fields = { recipe = fields.recipe, sha256 = hash, from = o.from, lane = admitted.lane, sha = admitted.sha }
  if not state then
    state = fresh_state(o.ticket, recipe, abs, hash)
    state.recipe.fingerprint = fingerprint
    start_index(state.phases, o.from)  -- a bad --from is refused before anything is written
    lg:save(state)
    lg:log("run", run_fields)
  else
    check_recipe(state, recipe, o.ticket)
    local accepted = check_reshape(o, state, recipe)
    local gone, reshaped = sync_phases(state, recipe)
    local changed = reshaped or state.recipe.sha256 ~= hash or state.recipe.path ~= abs
      or state.recipe.name ~= recipe.name or state.recipe.fingerprint ~= fingerprint
    if start_index(state.phases, o.from) then lg:log("run", run_fields) end
    if state.recipe.sha256 ~= hash then
      lg:log("recipe-changed", { old = state.recipe.sha256, new = hash, recipe = shown(abs) })
      say(string.format("note: the recipe changed since the last run of ticket %s (sha256 %s -> %s); the change is logged",
        o.ticket, short(state.recipe.sha256), short(hash)))
      state.recipe.previous_sha256 = state.recipe.sha256
      state.recipe.changed = core.now()
    end
    if accepted then
      lg:log("recipe-change-accepted", { changes = table.concat(accepted, "; "), recipe = shown(abs) })
      say(string.format("note: %s: the recipe's change to the recorded phases of ticket %s is accepted and logged:\n  %s",
        require("relua.release.reshape").FLAG, o.ticket, table.concat(accepted, "\n  ")))
    end
    if #gone > 0 then
      lg:log("phases-removed", { phases = table.concat(gone, ",") })
    end
    state.recipe.path, state.recipe.sha256, state.recipe.name = abs, hash, recipe.name
    state.recipe.fingerprint = fingerprint
    if changed then lg:save(state) end
  end

  -- where the run starts is the core's decision (lg:start and lg:run agree: one function)
  local start, why, hint = lg:start(o.from)  -- no copy of the state needed for this
  if start == nil then usage(why, hint) end
  start = start or nil
  if not start then
    lg:log("nothing-to-do", fields, false)  -- it records no change: not waited for on disk
    say(nothing_to_do(#recipe.phases, o.ticket))
    report:finish(0, state, { nothing_to_do = true })  -- state: what was just saved
    lg:close()
    return 0
  end

  if recipe.preflight then  -- fail closed: all checks before the first phase (doc/preflight.md)
    require("relua.preflight").enforce(recipe.preflight, { ticket = o.ticket, recipe = recipe,
      state = state.state or {}, say = say, log = function(ev, f) lg:log(ev, f) end })
  end
  local out = lg:paths().out
  local context = require "relua.release.context"
  local r = context.new_context({
    ticket = o.ticket, recipe = recipe, dir = out:match("^(.*)/[^/]*$") or ".", say = say,
    store = context.store_for(lg, state, false, say),
  })
  local plan = {}
  for i, p in ipairs(recipe.phases) do
    if i < start then
      say(string.format("phase %s: done earlier, skipped", p.name))
      report:skipped(p.name, "done earlier")
    end
    plan[i] = {
      name = p.name,
      fn = function(ctx)
        ctx.phase = p.name
        ctx.out = out .. "/" .. p.name .. ".out"
        local _, entry = status_of(lg:state(), p.name)
        context.append_out(ctx, string.format("--- %s phase %s, attempt %d ---\n", core.now(), p.name, entry.attempts or 1))
        report:start(p.name)
        say(string.format("phase %s: running", p.name))
        local t0 = core.clock()
        local done, e = xpcall(p.run, masked_error, ctx)
        if not done then error(e, 0) end
        say(string.format("phase %s: done (%.2fs)", p.name, core.clock() - t0))
        report:done(p.name)
      end,
    }
  end
  local ran, finished, name, rc, msg, perr = pcall(lg.run, lg, plan, r, "run", o.from)
  if not ran then
    if errors.is(finished) and finished.code == "unrecorded" then return unrecorded(o, finished, report) end
    error(finished, 0)
  end
  r.phase, r.out = nil, nil
  if finished then
    -- The ticket's warnings field (doc/publish.md): the fallbacks that did not get the release.
    local final = lg:state()
    local warnings = require("relua.ticket").publish_warnings(final)
    if #warnings > 0 or final.warnings ~= nil then
      final.warnings = #warnings > 0 and json.array(warnings) or nil
      lg:save(final)
    end
    local phases = #recipe.phases == 1 and "1 phase" or "all " .. #recipe.phases .. " phases"
    if #warnings > 0 then
      local names, seen = {}, {}
      for _, w in ipairs(warnings) do
        if not seen[w.target] then seen[w.target] = true; names[#names + 1] = w.target end
      end
      say(string.format("release %s done with warnings: %s done; fallback target%s %s did not get the release (relua status %s)",
        o.ticket, phases, #names > 1 and "s" or "", table.concat(names, ", "), o.ticket))
    else
      say(string.format("release %s done: %s done", o.ticket, phases))
    end
    report:finish(0, lg:state())
    lg:close()
    return 0
  end
  report:close(name)
  M.complain(require("relua.ci").paint("stderr", "red", string.format("relua: phase %s failed: %s", name, msg)))
  if type(perr) == "table" and type(perr.hint) == "string" then M.complain(perr.hint) end
  if type(perr) == "table" and perr.traceback and os.getenv("RELUA_TRACE") then
    M.complain(perr.traceback)
  end
  local ctx = release_ctx(o, name, rc, msg, lg:state())
  local hints = M.failure_hints(ctx)
  for _, line in ipairs(hints) do M.complain(line) end
  local exit = (rc == 130 or rc == 143) and rc or 1  -- Ctrl-C, SIGTERM
  -- the CI annotation and the job summary give the terminal's hints: past the point of no
  -- return there is no roll back to offer
  local past = require("relua.release.noreturn").point(recipe, ctx.state) ~= nil
  report:failed(name, rc, msg, table.concat(hints, "\n"))
  report:finish(exit, lg:state(), { resume = ctx.resume, revert = not past and ctx.revert or nil, hints = hints })
  lg:close()
  return exit
end

--- `relua RECIPE TICKET ...`: called by relua.cli with the recipe the script returned.
---@param recipe table
---@param path string
---@return integer
function M.main(recipe, path, ...)
  if path == nil then usage("a recipe must be a file", RUN_USAGE) end
  M.validate(recipe, path)
  local o = parse_args({ ... }, { from = "value", ["dry-run"] = "flag", json = "flag", ["accept-recipe-change"] = "flag" })
  if #o.positional == 0 then usage("no ticket given", RUN_USAGE) end
  if #o.positional > 1 then usage("unexpected argument " .. o.positional[2], RUN_USAGE) end
  if o.json and o["dry-run"] then usage("--json and --dry-run do not go together: a dry run is for reading", RUN_USAGE) end
  return M.execute({
    recipe = recipe, path = path, ticket = o.positional[1], from = o.from,
    dry_run = o["dry-run"] or false, json = o.json, accept_recipe_change = o["accept-recipe-change"],
  })
end

--- `relua run RECIPE TICKET ...`: the recipe file must return a valid recipe (exit 2).
---@return integer
function M.run_command(...)
  local args = { ... }
  local path = args[1]
  if path == nil or path:match("^%-%-") then usage("no recipe given", RUN_USAGE) end
  local recipe = M.load_recipe(path)
  return M.main(recipe, path, table.unpack(args, 2))
end

--- `relua revert TICKET [--recipe=PATH] [--dry-run]`: runs the revert of every phase
--- that is done, failed or was running, in reverse order.
---@return integer
--- `relua revert TICKET [--recipe=PATH] [--dry-run]` (relua.release.commands).
---@return integer
function M.revert_command(...) return require("relua.release.commands").revert_command(...) end

--- `relua status TICKET [--json]` (relua.release.commands).
---@return integer
function M.status_command(...) return require("relua.release.commands").status_command(...) end

--- `relua log TICKET` (relua.release.commands).
---@return integer
function M.log_command(...) return require("relua.release.commands").log_command(...) end

--- `relua list [--json]` (relua.release.commands).
---@return integer
function M.list_command(...) return require("relua.release.commands").list_command(...) end

-- For relua.release.context and relua.release.commands.
M._internal = {
  quote_arg = quote_arg, usage = usage, check_ticket = check_ticket, abspath = abspath,
  shown = shown, recipe_hash = recipe_hash, short = short, one_line = one_line, nothing_to_do = nothing_to_do,
  reporter = reporter,
  status_of = status_of, find_phase = find_phase, parse_args = parse_args,
}

--- `relua store copy --to URL [TICKET...]` (relua.store).
---@return integer
function M.store_copy_command(...) return storelib.copy_command(...) end

return M
