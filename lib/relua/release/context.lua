--- relua.release.context: the `r` object a phase gets (see doc/recipes.md). Loaded by
-- relua.release only when a phase runs, so that a no-op re-run does not compile it.
local errors = require "relua.error"
local json = require "relua.json"
local secret = require "relua.secret"

local M = {}

local function quote_arg(s)
  if s:match("^[%w%./_%-=:,+@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function one_line(s)
  s = tostring(s or "")
  return (s:gsub("\n.*", ""))
end


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
    -- Nothing reaches the disk in clear: a value equal to a secret is refused, a string
    -- holding one is stored masked, event fields are masked (relua.secret.guard).
    return {
      get = function(k) return lg:get(k) end,
      set = function(k, v, phase) lg:set(k, secret.guard(v, "r.state." .. k), phase) end,
      values = function() return (lg:state() or {}).state or {} end,
      step = function(k) return lg:step(k) end,
      record = function(k, phase, v) lg:record_step(k, phase, secret.guard(v, "step " .. k)) end,
      log = function(ev, f) lg:log(ev, secret.mask_value(f)) end,
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
      v = secret.guard(v, "r.state." .. k)
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
  errors.usage_hint = nil  -- phases run now: the command line's usage is no hint for their errors
  local store = opts.store
  local r = setmetatable({
    ticket = opts.ticket, phase = nil, dry_run = opts.dry_run or false,
    recipe = opts.recipe, dir = opts.dir, out = nil,
  }, R)
  rawset(r, "_store", store)
  if not r.dry_run then require("relua.release.noreturn").current = r end  -- for the publish core
  rawset(r, "_say", opts.say)
  r.state = setmetatable({}, {
    __index = function(_, k) return store.get(k) end,
    __newindex = function(_, k, v)
      if type(k) ~= "string" then error("r.state keys are strings (got a " .. type(k) .. ")", 2) end
      local ok, err = pcall(store.set, k, v, r.phase)
      if not ok then   -- a value JSON cannot hold: said at the recipe's line
        if type(err) == "string" then error("r.state." .. k .. ": " .. err:gsub("^[^:]*:%d+: ", ""), 2) end
        error(err, 0)
      end
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
    f:write(secret.mask(text))
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

local function run_once(self, argv, shown_cmd, opts)
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

-- Runs the process up to opts.tries times (default 1), opts.delay seconds apart, until it
-- exits 0; each failed try but the last is logged and does not fail the phase.
local function run_process(self, argv, shown_cmd, opts)
  opts = opts or {}
  local tries, delay = opts.tries or 1, opts.delay or 0
  if math.type(tries) ~= "integer" or tries < 1 then error("r:sh/r:run: tries must be an integer >= 1", 3) end
  if type(delay) ~= "number" or delay < 0 then error("r:sh/r:run: delay must be a number of seconds >= 0", 3) end
  local once = setmetatable({ check = false }, { __index = opts })  -- an early try never fails the phase
  for try = 1, tries do
    local res, err, code = run_once(self, argv, shown_cmd, try == tries and opts or once)
    if try == tries or (res and res.code == 0) then
      if try > 1 and res and res.code == 0 then self:log(string.format("passed on try %d of %d", try, tries)) end
      return res, err, code
    end
    local why = res and (res.code and "exit " .. res.code or "signal " .. tostring(res.signal)) or err
    self:log(string.format("%s on try %d of %d; next try in %gs", why, try, tries, delay))
    require("relua.proc").sleep(delay)
  end
end

--- Runs a command line through /bin/sh. Output streams to the terminal and to the phase's
--- .out file; a non-zero exit fails the phase with that code (opts.check=false returns the
--- result instead). opts: cwd, env, stdin, timeout, check, tries (run again until it exits
--- 0, at most this many times), delay (seconds between tries).
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
  local files = require("relua.fs").glob(glob)
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


M.R = R
M.store_for = store_for
M.new_context = new_context
M.append_out = append_out

return M
