--- relua.release: the release engine's policy. A recipe is a table of ordered phases;
-- `relua RECIPE TICKET` runs them for a ticket. What must hold whatever a recipe does (the
-- lock, the state file, the audit log, the phase runner that halts on failure) is C, in
-- host/ledger.c (relua.core.ledger); this file decides where to start, builds the `r`
-- context recipes use, and prints what happened and what to do next.
local core = require "relua.core.ledger"
local errors = require "relua.error"
local fs = require "relua.fs"
local json = require "relua.json"
local ticketlib = require "relua.ticket"

local M = {}

--- Where progress goes (stdout); specs may replace it.
---@param s string
function M.say(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

--- Where failures and hints go (stderr).
---@param s string
function M.complain(s)
  io.stderr:write(s, "\n")
  io.stderr:flush()
end

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
  local lines = {
    string.format("release %s in phase %s (rc=%d). Resume: %s. Roll back: %s.",
      ctx.rc == 130 and "interrupted" or "failed", ctx.phase, ctx.rc, ctx.resume, ctx.revert),
  }
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

local function abspath(p)
  local ok, fs = pcall(require, "relua.fs")
  if ok and fs.abspath then return fs.abspath(p) end
  if p:sub(1, 1) == "/" then return p end
  return (os.getenv("PWD") or ".") .. "/" .. p
end

-- Shown paths: relative to the working directory when under it.
local function shown(p)
  local ok, fs = pcall(require, "relua.fs")
  local cwd = ok and fs.cwd and fs.cwd() or os.getenv("PWD")
  if cwd and p:sub(1, #cwd + 1) == cwd .. "/" then return p:sub(#cwd + 2) end
  return p
end

local function short(h) return h and h:sub(1, 12) or "?" end

local function one_line(s)
  s = tostring(s or "")
  return (s:gsub("\n.*", ""))
end

-- ------------------------------------------------------------------ recipes

local PHASE_NAME = "^[%w%._%-]+$"

--- Checks a recipe; raises a usage error (exit 2) naming the file and the problem.
---@param recipe any
---@param path string
---@return table recipe
function M.validate(recipe, path)
  local function bad(what)
    usage(string.format("invalid recipe %s: %s", path, what),
      "a recipe returns { phases = { { name = \"prepare\", run = function(r) ... end }, ... } } (see doc/recipes.md)")
  end
  if type(recipe) ~= "table" then
    bad("it returns " .. (recipe == nil and "nothing" or "a " .. type(recipe)) .. ", not a table of phases")
  end
  local phases = recipe.phases
  if phases == nil then bad("it has no phases") end
  if type(phases) ~= "table" then bad("phases is a " .. type(phases) .. ", not a list") end
  if #phases == 0 then bad("phases is empty") end
  for k in pairs(phases) do
    if math.type(k) ~= "integer" or k < 1 or k > #phases then
      bad("phases must be a list (found the key " .. tostring(k) .. ")")
    end
  end
  local seen = {}
  for i, p in ipairs(phases) do
    if type(p) ~= "table" then bad(string.format("phase %d is a %s, not a table", i, type(p))) end
    if p.name == nil then bad(string.format("phase %d has no name", i)) end
    if type(p.name) ~= "string" or #p.name > 64 or not p.name:match(PHASE_NAME) then
      bad(string.format("phase %d has an invalid name %q (use 1-64 characters of A-Z a-z 0-9 . _ -)", i, tostring(p.name)))
    end
    if seen[p.name] then bad(string.format("phase %s appears twice (phases %d and %d)", p.name, seen[p.name], i)) end
    seen[p.name] = i
    if type(p.run) ~= "function" then
      bad(string.format("phase %s has no run function", p.name))
    end
    if p.revert ~= nil and type(p.revert) ~= "function" then
      bad(string.format("phase %s: revert must be a function", p.name))
    end
  end
  return recipe
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

-- ------------------------------------------------------------------ the r context

--- The object a phase gets. Fields: ticket, phase, state (a proxy: assignment is durable
--- before it returns), dry_run, recipe, dir (the ledger folder), out (the phase's .out).
---@class relua.Run
---@field ticket string
---@field phase string?
---@field state table
---@field dry_run boolean
local R = {}
R.__index = R

local function store_for(lg, state, dry, say)
  if not dry then
    return {
      get = function(k) return lg:get(k) end,
      set = function(k, v, phase) lg:set(k, v, phase) end,
      values = function() return (lg:state() or {}).state or {} end,
      step = function(k) return lg:step(k) end,
      record = function(k, phase, v) lg:record_step(k, phase, v) end,
      log = function(ev, f) lg:log(ev, f) end,
      crash = function(p) lg:crash(p) end,
    }
  end
  local base = state and state.state or {}
  local overlay, deleted = {}, {}
  return {
    get = function(k)
      if deleted[k] then return nil end
      if overlay[k] ~= nil then return overlay[k] end
      return base[k]
    end,
    set = function(k, v)
      json.encode(v) -- the same refusal as a real run
      say(string.format("  [dry-run] would set state %s = %s", k, json.encode(v)))
      overlay[k] = v
      deleted[k] = v == nil or nil
    end,
    values = function()
      local t = {}
      for k, v in pairs(base) do if not deleted[k] then t[k] = v end end
      for k, v in pairs(overlay) do t[k] = v end
      return t
    end,
    step = function(k) return state and state.steps and state.steps[k] end,
    record = function() end,
    log = function() end,
    crash = function() end,
  }
end

local function new_context(opts)
  local store = opts.store
  local r = setmetatable({
    ticket = opts.ticket, phase = nil, dry_run = opts.dry_run or false,
    recipe = opts.recipe, dir = opts.dir, out = nil,
  }, R)
  rawset(r, "_store", store)
  rawset(r, "_say", opts.say)
  r.state = setmetatable({}, {
    __index = function(_, k) return store.get(k) end,
    __newindex = function(_, k, v)
      if type(k) ~= "string" then error("r.state keys are strings (got a " .. type(k) .. ")", 2) end
      store.set(k, v, r.phase)
    end,
    __pairs = function()
      local vals = store.values()
      return next, vals, nil
    end,
  })
  return r
end

local function append_out(r, text)
  if r.dry_run or not r.out then return end
  local f = io.open(r.out, "a")
  if f then
    f:write(text)
    f:close()
  end
end

--- The environment a phase's processes get: the state's string and number values (with
--- names fit for the environment), RELUA_TICKET, RELUA_PHASE, then `extra`.
---@param extra table?
---@return table
function R:env(extra)
  local env = {}
  for k, v in pairs(self._store.values()) do
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and
        (type(v) == "string" or type(v) == "number") then
      env[k] = tostring(v)
    end
  end
  env.RELUA_TICKET = self.ticket
  env.RELUA_PHASE = self.phase or ""
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

--- Runs fn once per ticket: its result (any JSON value) is recorded durably; a later run
--- returns the recorded result without calling fn. A step that raised runs again next time.
---@param key string
---@param fn fun(r:relua.Run):any
---@return any result
function R:step(key, fn)
  if type(key) ~= "string" or key == "" then error("r:step: the key must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("r:step: a function is expected after the key", 2) end
  local store = self._store
  local rec = store.step(key)
  if rec then
    self._say(string.format("  step %s: done earlier, reusing its recorded result", key))
    store.log("step", { phase = self.phase, key = key, status = "reused" })
    return rec.result
  end
  if self.dry_run then
    self._say(string.format("  [dry-run] would run step %s", key))
    return nil
  end
  self._say(string.format("  step %s: running", key))
  store.crash("step-run")
  local ok, result = pcall(fn, self)
  if not ok then
    local msg = errors.is(result) and result.message or result
    pcall(store.log, "step", { phase = self.phase, key = key, status = "failed", msg = one_line(msg) })
    error(result, 0)
  end
  store.record(key, self.phase, result)
  return result
end

local function describe(argv)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = quote_arg(tostring(a)) end
  return table.concat(parts, " ")
end

local function run_process(self, argv, shown_cmd, opts)
  opts = opts or {}
  if self.dry_run then
    self._say("  [dry-run] would run: " .. shown_cmd)
    return { code = 0, stdout = "", stderr = "", dry_run = true }
  end
  local proc = require "relua.proc"
  self._say("  $ " .. shown_cmd)
  append_out(self, "$ " .. shown_cmd .. "\n")
  local res, err, code = proc.run(argv, {
    cwd = opts.cwd, env = self:env(opts.env), stdin = opts.stdin, timeout = opts.timeout,
    tee = self.out, echo = true,
  })
  if not res then
    local rc = code == "ENOENT" and 127 or 126
    if opts.check == false then return nil, err, code end
    errors.raise("command-failed", string.format("%s: %s", shown_cmd, err), { rc = rc, exit = 1 })
  end
  if res.tee_error then self._say("  warning: the phase's output file: " .. res.tee_error) end
  local rc = res.code
  if rc == nil then rc = 128 + (res.signal or 0) end
  if res.timed_out then rc = 124 end
  if rc ~= 0 and opts.check ~= false then
    local why = res.timed_out and string.format("timed out after %gs", opts.timeout)
      or res.signal and string.format("was killed by signal %d", res.signal)
      or string.format("exited with %d", rc)
    errors.raise("command-failed", string.format("command %s: %s", why, shown_cmd), { rc = rc, exit = 1 })
  end
  return res
end

--- Runs a command line through /bin/sh. Output streams to the terminal and to the phase's
--- .out file; a non-zero exit fails the phase with that code (opts.check=false returns the
--- result instead). opts: cwd, env, stdin, timeout, check.
---@param cmd string
---@param opts table?
---@return table result {code=, stdout=, stderr=, duration=, ...}
function R:sh(cmd, opts)
  if type(cmd) ~= "string" then error("r:sh: a command line (string) is expected", 2) end
  return run_process(self, { "/bin/sh", "-c", cmd }, cmd, opts)
end

--- Runs argv (no shell), like r:sh.
---@param argv string[]
---@param opts table?
---@return table result
function R:run(argv, opts)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then
    error("r:run: an argument list {\"prog\", ...} is expected", 2)
  end
  return run_process(self, argv, describe(argv), opts)
end

--- Runs the Lua files matching glob (sorted) with this r: each file gets r as `...`; a
--- file that returns a function has it called with r. Returns the files run.
---@param glob string
---@return string[]
function R:include(glob)
  if type(glob) ~= "string" then error("r:include: a glob pattern (string) is expected", 2) end
  local fs = require "relua.fs"
  local files = fs.glob(glob)
  table.sort(files)
  if #files == 0 then
    self._say(string.format("  include %s: no files match", glob))
    self._store.log("include", { phase = self.phase, pattern = glob, files = 0 })
    return files
  end
  for _, file in ipairs(files) do
    self._say("  include " .. file)
    self._store.log("include", { phase = self.phase, file = file })
    local chunk, err = loadfile(file)
    if not chunk then errors.raise("include", "r:include: " .. err, { rc = 1, exit = 1 }) end
    local ret = chunk(self)
    if type(ret) == "function" then ret(self) end
  end
  return files
end

--- Does something that changes the world, unless this is a dry run: then it only prints
--- `[dry-run] would WHAT` and returns nil. For recipes that act through other modules
--- (relua.git, relua.http, ...) rather than r:sh/r:run: `r:act("push tag v1", function() ... end)`.
--- Logged as event=act.
---@param what string
---@param fn fun(r:relua.Run):any
---@return any
function R:act(what, fn)
  if type(what) ~= "string" then error("r:act: a description (string) is expected", 2) end
  if type(fn) ~= "function" then error("r:act: a function is expected after the description", 2) end
  if self.dry_run then
    self._say("  [dry-run] would " .. what)
    return nil
  end
  self._say("  " .. what)
  self._store.log("act", { phase = self.phase, msg = what })
  return fn(self)
end

--- Prints a line (prefixed with the phase) and records it in the audit log (event=log).
function R:log(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  local msg = table.concat(parts, " ")
  self._say(string.format("  [%s] %s", self.phase or "-", msg))
  append_out(self, msg .. "\n")
  self._store.log("log", { phase = self.phase, msg = msg })
end

-- ------------------------------------------------------------------ runs

local function phase_names(recipe)
  local names = {}
  for i, p in ipairs(recipe.phases) do names[i] = p.name end
  return names
end

local function find_phase(recipe, name)
  for i, p in ipairs(recipe.phases) do
    if p.name == name then return i, p end
  end
end

-- The state of a ticket's first run.
local function fresh_state(ticket, recipe, path, hash)
  local phases = json.array()
  for i, p in ipairs(recipe.phases) do phases[i] = { name = p.name, status = "pending" } end
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

-- Which phases run: returns the index of the first phase to run (nil: nothing to do).
local function start_index(recipe, state, from)
  if from then
    local i = find_phase(recipe, from)
    if not i then
      usage(string.format("unknown phase %q: the phases are %s", from, table.concat(phase_names(recipe), ", ")))
    end
    for j = 1, i - 1 do
      local name = recipe.phases[j].name
      local st = state and status_of(state, name) or "pending"
      if st ~= "done" then
        usage(string.format("cannot start at phase %s: the earlier phase %s is not done (%s)", from, name, st),
          "run the release without --from to continue where it stopped, or use --from=" .. name)
      end
    end
    return i
  end
  if not state then return 1 end
  for i, p in ipairs(recipe.phases) do
    if status_of(state, p.name) ~= "done" then return i end
  end
  return nil
end

local function parse_args(args, allowed)
  local o = { positional = {} }
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
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
  end
  return o
end

local RUN_USAGE = "usage: relua RECIPE TICKET [--from=PHASE] [--dry-run]"

-- The dry run: reads the ledger (no lock, no writes) and runs the phases that would run
-- with an r whose state writes, steps and processes only say what they would do.
local function dry_run(o, recipe, start, state, say)
  say(string.format("dry run of %s for ticket %s: nothing will be changed", o.path, o.ticket))
  local holder = core.holder(o.dir, o.ticket)
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
    say(string.format("nothing to do: all %d phases of ticket %s are done", #recipe.phases, o.ticket))
    return 0
  end
  local r = new_context({
    ticket = o.ticket, dry_run = true, recipe = recipe, dir = o.dir, say = say,
    store = store_for(nil, state, true, say),
  })
  for i, p in ipairs(recipe.phases) do
    if i < start then
      say(string.format("phase %s: done, would be skipped", p.name))
    else
      say(string.format("phase %s: would run", p.name))
      r.phase = p.name
      local ok, err = pcall(p.run, r)
      if not ok then
        say(string.format("  (the dry run of phase %s stopped early: %s)", p.name,
          one_line(errors.is(err) and err.message or err)))
      end
    end
  end
  return 0
end

local function release_ctx(o, name, rc, msg, state)
  local cmd = "relua " .. quote_arg(o.path) .. " " .. o.ticket .. " --from=" .. name
  return {
    ticket = o.ticket, phase = name, rc = rc, message = msg, recipe = o.recipe,
    recipe_path = o.path, state = state, resume = cmd, revert = "relua revert " .. o.ticket,
  }
end

--- Runs a release. opts: recipe (validated table), path (as the user gave it), ticket,
--- from, dry_run, home. Returns the exit status (0 done or nothing to do, 1 a phase
--- failed, 130 interrupted); raises structured errors for usage (2) and refusal (3).
---@param o table
---@return integer
function M.execute(o)
  local say = o.say or M.say
  check_ticket(o.ticket)
  local recipe = o.recipe
  o.dir = ticketlib.dir(o.home)
  local abs = abspath(o.path)
  local hash, herr = fs.digest(abs, "sha256")
  if not hash then usage("cannot read recipe " .. herr) end

  if o.dry_run then
    local state, err, code = core.read(o.dir .. "/" .. o.ticket .. ".json", o.ticket)
    if not state and code ~= "ENOENT" then
      errors.raise("corrupt", err, { exit = 2, hint = "the file was left untouched" })
    end
    if state then sync_phases(state, recipe) end
    return dry_run(o, recipe, start_index(recipe, state, o.from), state, say)
  end

  local lg, err, code, holder = core.open(o.dir, o.ticket)
  if not lg then
    if code == "locked" then
      errors.raise("locked", err, { exit = 3,
        hint = string.format("one run per ticket: wait for pid %s on %s to finish (relua status %s shows its progress)",
          tostring(holder.pid or "?"), tostring(holder.host or "?"), o.ticket) })
    elseif code == "corrupt" then
      errors.raise("corrupt", err, { exit = 2,
        hint = "relua left the file untouched: inspect it, restore it, or move it away to start the ticket afresh" })
    end
    errors.raise(code or "ledger", err, { exit = 1 })
  end
  local guard <close> = lg  -- the lock goes whatever happens below
  local state = lg:state()
  local fields = { recipe = shown(abs), sha256 = hash, from = o.from }
  if not state then
    state = fresh_state(o.ticket, recipe, abs, hash)
    start_index(recipe, state, o.from)  -- a bad --from is refused before anything is written
    lg:save(state)
    lg:log("run", fields)
  else
    local gone, reshaped = sync_phases(state, recipe)
    local changed = reshaped or state.recipe.sha256 ~= hash or state.recipe.path ~= abs
      or state.recipe.name ~= recipe.name
    if start_index(recipe, state, o.from) then lg:log("run", fields) end
    if state.recipe.sha256 ~= hash then
      lg:log("recipe-changed", { old = state.recipe.sha256, new = hash, recipe = shown(abs) })
      say(string.format("note: the recipe changed since the last run of ticket %s (sha256 %s -> %s); the change is logged",
        o.ticket, short(state.recipe.sha256), short(hash)))
      state.recipe.previous_sha256 = state.recipe.sha256
      state.recipe.changed = core.now()
    end
    if #gone > 0 then
      lg:log("phases-removed", { phases = table.concat(gone, ",") })
    end
    state.recipe.path, state.recipe.sha256, state.recipe.name = abs, hash, recipe.name
    if changed then lg:save(state) end
  end

  local start = start_index(recipe, state, o.from)
  if not start then
    lg:log("nothing-to-do", fields)
    say(string.format("nothing to do: all %d phases of ticket %s are done", #recipe.phases, o.ticket))
    lg:close()
    return 0
  end

  local paths = lg:paths()
  local r = new_context({
    ticket = o.ticket, recipe = recipe, dir = o.dir, say = say,
    store = store_for(lg, state, false, say),
  })
  local plan = {}
  for i, p in ipairs(recipe.phases) do
    if i < start then
      say(string.format("phase %s: done earlier, skipped", p.name))
      plan[i] = { name = p.name, skip = true, reason = "done" }
    else
      plan[i] = {
        name = p.name,
        fn = function(ctx)
          ctx.phase = p.name
          ctx.out = paths.out .. "/" .. p.name .. ".out"
          local _, entry = status_of(lg:state(), p.name)
          append_out(ctx, string.format("--- %s phase %s, attempt %d ---\n", core.now(), p.name, entry.attempts or 1))
          say(string.format("phase %s: running", p.name))
          local t0 = core.clock()
          p.run(ctx)
          say(string.format("phase %s: done (%.2fs)", p.name, core.clock() - t0))
        end,
      }
    end
  end
  local ok, name, rc, msg, perr = lg:run(plan, r)
  r.phase, r.out = nil, nil
  if ok then
    say(string.format("release %s done: all %d phases done", o.ticket, #recipe.phases))
    lg:close()
    return 0
  end
  M.complain(string.format("relua: phase %s failed: %s", name, msg))
  if type(perr) == "table" and type(perr.hint) == "string" then M.complain(perr.hint) end
  if type(perr) == "table" and perr.traceback and os.getenv("RELUA_TRACE") then
    M.complain(perr.traceback)
  end
  for _, line in ipairs(M.failure_hints(release_ctx(o, name, rc, msg, lg:state()))) do
    M.complain(line)
  end
  lg:close()
  if rc == 130 then return 130 end
  return 1
end

--- `relua RECIPE TICKET ...`: called by relua.cli with the recipe the script returned.
---@param recipe table
---@param path string
---@return integer
function M.main(recipe, path, ...)
  if path == nil then usage("a recipe must be a file", RUN_USAGE) end
  M.validate(recipe, path)
  local o = parse_args({ ... }, { from = "value", ["dry-run"] = "flag" })
  if #o.positional == 0 then usage("no ticket given", RUN_USAGE) end
  if #o.positional > 1 then usage("unexpected argument " .. o.positional[2], RUN_USAGE) end
  return M.execute({
    recipe = recipe, path = path, ticket = o.positional[1], from = o.from,
    dry_run = o["dry-run"] or false,
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
function M.revert_command(...)
  local say = M.say
  local o = parse_args({ ... }, { recipe = "value", ["dry-run"] = "flag" })
  if #o.positional ~= 1 then
    usage(#o.positional == 0 and "no ticket given" or "unexpected argument " .. o.positional[2],
      "usage: relua revert TICKET [--recipe=PATH] [--dry-run]")
  end
  local ticket = o.positional[1]
  check_ticket(ticket)
  local dir = ticketlib.dir(o.home)
  local statefile = dir .. "/" .. ticket .. ".json"
  local recorded, err, code = core.read(statefile, ticket)
  if not recorded then
    if code == "ENOENT" then usage(string.format("no release recorded for ticket %s (looked for %s)", ticket, statefile)) end
    errors.raise("corrupt", err, { exit = 2, hint = "relua left the file untouched" })
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
  local recipe = M.load_recipe(path)
  local function todo(state)
    local list = {}
    for i = #recipe.phases, 1, -1 do
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
        local ok, e = pcall(p.revert, r)
        if not ok then say("  (the dry run stopped early: " .. one_line(errors.is(e) and e.message or e) .. ")") end
      else
        say(string.format("phase %s: has no revert", p.name))
      end
    end
    return 0
  end
  local lg, lerr, lcode, holder = core.open(dir, ticket)
  if not lg then
    if lcode == "locked" then
      errors.raise("locked", lerr, { exit = 3, hint = string.format("wait for pid %s on %s to finish",
        tostring(holder.pid or "?"), tostring(holder.host or "?")) })
    end
    errors.raise(lcode or "ledger", lerr, { exit = lcode == "corrupt" and 2 or 1 })
  end
  local guard <close> = lg
  local state = lg:state()
  lg:log("revert-run", { recipe = shown(abspath(path)) })
  local list = todo(state)
  if #list == 0 then
    lg:log("nothing-to-do", { what = "revert" })
    say(string.format("nothing to revert: no phase of ticket %s is done or failed", ticket))
    lg:close()
    return 0
  end
  local paths = lg:paths()
  local r = new_context({ ticket = ticket, recipe = recipe, dir = dir, say = say,
    store = store_for(lg, state, false, say) })
  local plan = {}
  for _, p in ipairs(list) do
    if not p.revert then
      plan[#plan + 1] = { name = p.name }
    else
      plan[#plan + 1] = {
        name = p.name,
        fn = function(ctx)
          ctx.phase = p.name
          ctx.out = paths.out .. "/" .. p.name .. ".out"
          append_out(ctx, string.format("--- %s revert of phase %s ---\n", core.now(), p.name))
          say(string.format("phase %s: reverting", p.name))
          p.revert(ctx)
          -- The phase is undone: its steps run again if it is run again. Saved together
          -- with the `reverted` status by the runner.
          local steps = lg:state().steps or {}
          for k, e in pairs(steps) do
            if e.phase == p.name then steps[k] = nil end
          end
          say(string.format("phase %s: reverted", p.name))
        end,
      }
    end
  end
  for _, p in ipairs(list) do
    if not p.revert then say(string.format("phase %s has no revert: nothing undone, it stays %s", p.name, status_of(state, p.name))) end
  end
  for _, e in ipairs(state.phases) do
    if not find_phase(recipe, e.name) and (e.status == "done" or e.status == "failed" or e.status == "running") then
      say(string.format("phase %s is recorded %s but is not in the recipe any more: relua cannot revert it", e.name, e.status))
    end
  end
  local ok, name, rc, msg = lg:run(plan, r, "revert")
  lg:close()
  if ok then
    say(string.format("ticket %s reverted", ticket))
    return 0
  end
  M.complain(string.format("relua: revert of phase %s failed: %s", name, msg))
  M.complain(string.format("revert failed in phase %s (rc=%d). Fix the cause, then run: relua revert %s", name, rc, ticket))
  return rc == 130 and 130 or 1
end

-- ------------------------------------------------------------------ inspection

local function load_ticket(id, home)
  if id == nil then usage("no ticket given") end
  check_ticket(id)
  local t, err, code = ticketlib.load(id, { home = home })
  if not t then
    if code == "corrupt" then
      errors.raise("corrupt", err, { exit = 2, hint = "relua left the file untouched" })
    end
    usage(err)
  end
  return t
end

-- The command to run next, or nil.
local function next_command(t)
  local s = t.summary
  local recipe = quote_arg(shown(t.state.recipe.path))
  if s.status == "running" then return nil end
  if s.status == "done" then return nil end
  if s.status == "failed" or s.status == "interrupted" then
    return "relua " .. recipe .. " " .. t.id .. " --from=" .. s.phase .. "  (or roll back: relua revert " .. t.id .. ")"
  end
  return "relua " .. recipe .. " " .. t.id
end

--- `relua status TICKET [--json]`
---@return integer
function M.status_command(...)
  local o = parse_args({ ... }, { json = "flag" })
  local t = load_ticket(o.positional[1], o.home)
  local st, s = t.state, t.summary
  local current = fs.digest(st.recipe.path, "sha256")
  local file_changed = current ~= nil and current ~= st.recipe.sha256
  if o.json then
    local out = {
      ticket = t.id, status = s.status, phases = st.phases, state = st.state or {},
      steps = st.steps or {}, recipe = st.recipe, updated = st.updated, holder = t.holder,
      next = next_command(t),
      recipe_file_changed = file_changed,
    }
    if s.phase then out.failed = { phase = s.phase, rc = s.rc, msg = s.msg } end
    io.stdout:write(json.encode(out, { pretty = true }), "\n")
    return 0
  end
  local lines = {}
  local function add(...) lines[#lines + 1] = string.format(...) end
  local head = s.status
  if s.status == "failed" then head = string.format("failed in phase %s (rc=%s)", s.phase, tostring(s.rc))
  elseif s.status == "interrupted" then head = string.format("interrupted in phase %s (the run died; the phase did not finish)", s.phase)
  elseif s.status == "running" then
    head = string.format("running now (pid=%s host=%s since=%s)", tostring(t.holder.pid), tostring(t.holder.host), tostring(t.holder.since))
  end
  add("ticket %s: %s", t.id, head)
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
  local keys = {}
  for k in pairs(st.state or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  if #keys > 0 then
    add("state:")
    for _, k in ipairs(keys) do add("  %s = %s", k, json.encode(st.state[k])) end
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
  local nxt = next_command(t)
  if nxt then add("next: %s", nxt) end
  io.stdout:write(table.concat(lines, "\n"), "\n")
  return 0
end

--- `relua log TICKET`: the audit log as written.
---@return integer
function M.log_command(...)
  local o = parse_args({ ... }, {})
  local t = load_ticket(o.positional[1], o.home)
  local f = io.open(t.paths.log, "r")
  if f then
    io.stdout:write(f:read("a"))
    f:close()
  end
  return 0
end

--- `relua list`: every ticket and its status.
---@return integer
function M.list_command(...)
  local o = parse_args({ ... }, { json = "flag" })
  local items = ticketlib.list({ home = o.home })
  if o.json then
    io.stdout:write(json.encode(json.array(items), { pretty = true }), "\n")
    return 0
  end
  if #items == 0 then
    io.stdout:write("no releases recorded under " .. ticketlib.dir(o.home) .. "\n")
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
