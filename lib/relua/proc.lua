--- relua.proc: child processes.
-- proc.run(argv, opts) runs a program (no shell) and returns what happened; proc.sh runs a
-- shell command line; proc.spawn starts one and hands back a handle to wait on, so several
-- can run in parallel. A non-zero exit is not an error: look at result.code. Failures to
-- start (missing program, bad cwd, unwritable tee) return nil, message, code.
-- The child runs in its own process group: a timeout, handle:kill() or Ctrl-C reaches
-- everything it started.
local core = require "relua.core.proc"

local M = {}

---@class relua.proc.Result
---@field code integer?      exit status; nil when a signal ended it
---@field signal integer?    the signal that ended it
---@field stdout string      captured standard output ("" when not captured)
---@field stderr string      captured standard error ("" when not captured)
---@field duration number    seconds from start to exit
---@field timed_out boolean  the timeout fired and the group was killed
---@field truncated boolean  output beyond max_output was dropped (still teed/echoed)
---@field pid integer
---@field tee_error string?  writing the tee file failed (the child ran on)

---@class relua.proc.Options
---@field cwd string?                 folder the child starts in
---@field env table<string,string|false>?  added to the inherited environment; false unsets
---@field env_replace boolean?        env is the whole environment
---@field stdin string|boolean?       bytes fed to the child; true: inherit ours; nil: /dev/null
---@field timeout number?             seconds; then TERM, 1 s later KILL, to the whole group
---@field capture boolean?            keep stdout/stderr in the result (default true)
---@field max_output integer?         bytes kept per stream (default 64 MiB)
---@field tee string?                 file both streams are appended to as they arrive
---@field echo boolean?               copy the output to our stdout/stderr as it arrives

local OPTS = {
  cwd = "string", env = "table", env_replace = "boolean", stdin = { string = true, boolean = true },
  timeout = "number", capture = "boolean", max_output = "number", tee = "string", echo = "boolean",
}

local function check_opts(what, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("bad argument #2 to '%s' (table expected, got %s)", what, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if want == nil then
      error(string.format("%s: unknown option '%s'", what, tostring(k)), 3)
    end
    local ok = type(want) == "table" and want[type(v)] or type(v) == want
    if not ok then
      error(string.format("%s: option '%s' must be a %s, got %s", what, k,
        type(want) == "table" and "string or boolean" or want, type(v)), 3)
    end
  end
  return opts
end

local function check_argv(what, argv)
  if type(argv) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table expected, got %s)", what, type(argv)), 3)
  end
  if type(argv[1]) ~= "string" or argv[1] == "" then
    error(string.format("%s: argv[1] must name a program", what), 3)
  end
  local out = {}
  for i, a in ipairs(argv) do
    local t = type(a)
    if t == "number" then a = tostring(a)
    elseif t ~= "string" then
      error(string.format("%s: argv[%d] must be a string, got %s", what, i, t), 3)
    end
    out[i] = a
  end
  return out
end

-- The options the C core takes: the environment as "K=V" strings, and the PATH used for
-- the lookup of the program (the child's own PATH when env sets one).
local function core_opts(what, opts)
  local c = {
    cwd = opts.cwd, stdin = opts.stdin, capture = opts.capture, echo = opts.echo,
    tee = opts.tee, max_output = opts.max_output and math.floor(opts.max_output),
    timeout = opts.timeout,
  }
  if opts.env or opts.env_replace then
    local env = {}
    if not opts.env_replace then env = core.environ() end
    for k, v in pairs(opts.env or {}) do
      if type(k) ~= "string" or k == "" or k:find("=", 1, true) then
        error(string.format("%s: bad environment name %q", what, tostring(k)), 3)
      end
      if v == false then env[k] = nil
      elseif type(v) == "string" or type(v) == "number" then env[k] = tostring(v)
      else
        error(string.format("%s: environment value of %s must be a string or false", what, k), 3)
      end
    end
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
    table.sort(list)
    c.env = list
    if env.PATH then c.path = env.PATH end
  end
  return c
end

local function start(what, argv, opts)
  argv = check_argv(what, argv)
  opts = check_opts(what, opts)
  return core.spawn(what, argv, core_opts(what, opts))
end

---@class relua.proc.Process
---@field pid fun(self):integer
---@field wait fun(self, timeout:number?):relua.proc.Result
---@field kill fun(self, signal:string|integer?):boolean?, string?, string?
---@field running fun(self):boolean
---@field close fun(self)

--- Starts a program and returns its handle at once. handle:wait([timeout]) collects the
--- result (the timeout of opts applies when none is given); handle:kill([sig]) signals the
--- whole group (default "TERM"); handle:close() (also <close> and garbage collection)
--- kills and reaps a child still running.
--- Output is read while relua waits on any handle (the others' pipes move too), so
--- parallel children do not stall on a full pipe while you wait on one of them.
---@param argv string[]
---@param opts relua.proc.Options?
---@return relua.proc.Process|nil handle
---@return string? message
---@return string? code
function M.spawn(argv, opts)
  return start("proc.spawn", argv, opts)
end

--- Runs a program from an argv list (looked up in PATH; no shell) and waits for it.
---@param argv string[]
---@param opts relua.proc.Options?
---@return relua.proc.Result|nil result
---@return string? message
---@return string? code
function M.run(argv, opts)
  local h <close>, msg, code = start("proc.run", argv, opts)
  if not h then return nil, msg, code end
  return h:wait()
end

--- Runs a command line with /bin/sh -c. Quote what you interpolate (proc.quote).
---@param cmdline string
---@param opts relua.proc.Options?
---@return relua.proc.Result|nil result
---@return string? message
---@return string? code
function M.sh(cmdline, opts)
  if type(cmdline) ~= "string" then
    error(string.format("bad argument #1 to 'proc.sh' (string expected, got %s)", type(cmdline)), 2)
  end
  local h <close>, msg, code = start("proc.sh", { "/bin/sh", "-c", cmdline }, opts)
  if not h then return nil, msg, code end
  return h:wait()
end

--- Quotes a string for /bin/sh.
---@param s string
---@return string
function M.quote(s)
  s = tostring(s)
  if s:match("^[%w%-%./_=:,+@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Monotonic seconds (a float), for durations and benchmarks.
---@return number
M.clock = core.clock

--- This process's pid.
---@return integer
M.pid = core.pid

--- Waits for the given number of seconds (a fraction is fine). Ctrl-C interrupts it.
---@type fun(seconds:number)
M.sleep = core.sleep

--- Signal numbers by name (TERM, KILL, INT, HUP, ...).
M.signals = core.signals

--- True when the given stream (1/2 or "stdout"/"stderr"/"stdin") is a terminal.
---@param fd integer|string?
---@return boolean
function M.isatty(fd)
  if fd == nil or fd == "stdout" then fd = 1
  elseif fd == "stderr" then fd = 2
  elseif fd == "stdin" then fd = 0 end
  return core.isatty(fd)
end

return M
