-- A real PostgreSQL 15 server for the specs (Debian's postgresql-15): initdb in a temporary
-- folder, listening on 127.0.0.1 on a free port (and a Unix socket in that folder), with a
-- superuser "relua" whose password is required over TCP (scram-sha-256). PostgreSQL
-- refuses to run as root: when the suite runs as root (CI), the server runs as the
-- unprivileged user "relua-pg", created here once (useradd) if it is missing.
--
-- Bounded in time and always stopped: start waits at most 20 s; stop() is
-- `pg_ctl stop -m immediate` and removes the folder; a detached watchdog does the same
-- when the process that started the server is gone (a crashed or killed spec runner) or
-- after an hour at most.
--
--   local pg = require "support.postgres"
--   local srv = pg.shared()               -- one server for the whole spec process
--   local url = srv:database()            -- a fresh database: postgres://relua:PW@127.0.0.1:PORT/dbN
--   srv:url("db1", { password = false })  -- the same URL without the password (use srv.env)
--   srv:psql("select 1", "db1")           -- runs SQL through psql; returns its stdout
--   srv:restart()                         -- pg_ctl restart -m fast, same port
--   srv:stop()
local proc = require "relua.proc"
local fs = require "relua.fs"

local M = {}

local USER = "relua-pg"        -- the unprivileged system user that runs the server as root
local ROLE = "relua"           -- the database superuser
local MAX_LIFE = 3600          -- the watchdog stops the server after this many seconds

--- The folder of PostgreSQL 15's programs (initdb, pg_ctl, postgres, psql).
function M.bindir()
  for _, d in ipairs { "/usr/lib/postgresql/15/bin" } do
    if fs.exists(d .. "/pg_ctl") then return d end
  end
  local found = fs.glob("/usr/lib/postgresql/*/bin/pg_ctl")
  if found[#found] then return fs.dirname(found[#found]) end
  return nil
end

--- Whether a server can be started here (the programs are installed).
function M.available()
  return M.bindir() ~= nil
end

local function check(r, what)
  if not r then error(what .. ": " .. tostring(r)) end
  if r.code ~= 0 then
    error(string.format("%s failed (exit %s):\n%s%s", what, tostring(r.code), r.stdout, r.stderr))
  end
  return r
end

-- The argv prefix that runs a program as the server's user (nothing when not root).
local function as_user(argv)
  if proc.run({ "id", "-u" }).stdout:match("^0%s") then
    local out = { "runuser", "-u", USER, "--" }
    for _, a in ipairs(argv) do out[#out + 1] = a end
    return out
  end
  return argv
end

-- Creates the unprivileged user when running as root and it is missing (idempotent; two
-- suites creating it at once is fine: the loser finds it there).
local function ensure_user()
  if not proc.run({ "id", "-u" }).stdout:match("^0%s") then return end
  if proc.run({ "id", "-u", USER }).code == 0 then return end
  local r = proc.run({ "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
    "--shell", "/usr/sbin/nologin", USER })
  if proc.run({ "id", "-u", USER }).code ~= 0 then
    error("postgres: cannot create the user " .. USER .. ": " .. tostring(r and r.stderr))
  end
end

local listening = require("support.ports").listening

local Server = {}
Server.__index = Server

--- The URL of database db (default "postgres"). opts.password = false leaves the password
--- out (then srv.env, with PGPASSWORD, supplies it).
function Server:url(db, opts)
  opts = opts or {}
  local userinfo = ROLE
  if opts.password ~= false then userinfo = ROLE .. ":" .. self.password end
  return string.format("postgres://%s@127.0.0.1:%d/%s", userinfo, self.port, db or "postgres")
end

--- Runs SQL through psql (as a client over TCP); returns its stdout (tuples only,
--- unaligned). Raises when psql fails.
function Server:psql(sql, db)
  local r = check(proc.run({ self.bin .. "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
    "-h", "127.0.0.1", "-p", tostring(self.port), "-U", ROLE, "-d", db or "postgres", "-c", sql },
    { env = { PGPASSWORD = self.password, PGCONNECT_TIMEOUT = "10" }, timeout = 60 }), "psql")
  return r.stdout
end

--- Creates a new empty database and returns its URL (with the password) and its name.
function Server:database(name)
  self.ndb = (self.ndb or 0) + 1
  name = name or ("db" .. self.ndb)
  self:psql('create database "' .. name .. '"')
  return self:url(name), name
end

local function ctl(self, args, timeout)
  local argv = { self.bin .. "/pg_ctl", "-D", self.data, "-s" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return proc.run(as_user(argv), { timeout = timeout or 30, cwd = "/" })
end

-- The server's settings. The suite's server skips fsync (nothing here survives a power
-- cut anyway; a killed server still loses no committed transaction); the benchmark's is
-- durable, as a real one is.
local function opts_for(self)
  return string.format("-c port=%d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s"
    .. "%s -c max_connections=200 -c shared_buffers=16MB"
    .. " -c log_min_messages=warning -c logging_collector=off", self.port, self.dir,
    self.durable and "" or " -c fsync=off -c full_page_writes=off")
end

--- Restarts the server on the same port (a clean shutdown: every session is cut).
function Server:restart()
  check(ctl(self, { "-m", "fast", "-w", "-t", "20", "-l", self.dir .. "/server.log",
    "-o", opts_for(self), "restart" }, 30), "pg_ctl restart")
end

--- The server's log (for failure messages).
function Server:log()
  return fs.read(self.dir .. "/server.log") or ""
end

--- Stops the server at once (pg_ctl stop -m immediate) and removes its folder.
function Server:stop()
  if self.dir then
    if self.port then ctl(self, { "-m", "immediate", "-w", "-t", "10", "stop" }, 15) end
    fs.remove(self.dir, { recursive = true })
    self.dir = nil
  end
  if self.watchdog then
    os.execute("kill " .. self.watchdog .. " 2>/dev/null")
    self.watchdog = nil
  end
end

-- A detached shell that stops the server when this process is gone, or after MAX_LIFE.
local function start_watchdog(self)
  local stop = table.concat(as_user({ self.bin .. "/pg_ctl", "-D", self.data, "-s", "-m",
    "immediate", "stop" }), " ")
  local script = string.format(
    "i=0; while kill -0 %d 2>/dev/null && [ $i -lt %d ]; do sleep 1; i=$((i+1)); done; "
      .. "%s >/dev/null 2>&1; rm -rf %s",
    proc.pid(), MAX_LIFE, stop, proc.quote(self.dir))
  local pidfile = self.dir .. "/watchdog.pid"
  os.execute(string.format("setsid sh -c %s </dev/null >/dev/null 2>&1 & echo $! > %s",
    proc.quote(script), proc.quote(pidfile)))
  self.watchdog = (fs.read(pidfile) or ""):match("%d+")
end

--- Starts a server (see the top of this file). Raises when it cannot within 20 s.
--- opts.durable: fsync as a real server does (the benchmarks), else fsync=off.
function M.start(opts)
  local bin = M.bindir()
  if not bin then error("postgres: PostgreSQL 15 is not installed (make deps installs postgresql-15)") end
  ensure_user()
  local self = setmetatable({ bin = bin, durable = opts and opts.durable }, Server)
  self.dir = assert(fs.tmpdir("relua-pg"))
  self.data = self.dir .. "/data"
  math.randomseed(math.floor(proc.clock() * 1e6) + proc.pid())
  self.password = string.format("pg-%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  assert(fs.write(self.dir .. "/pw", self.password .. "\n"))
  if proc.run({ "id", "-u" }).stdout:match("^0%s") then
    check(proc.run({ "chown", "-R", USER, self.dir }), "chown")
  end
  local ok, err = pcall(function()
    check(proc.run(as_user({ bin .. "/initdb", "-D", self.data, "-U", ROLE, "--pwfile=" .. self.dir .. "/pw",
      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
      "--no-instructions" }), { timeout = 60, cwd = "/" }), "initdb")
    start_watchdog(self)
    local deadline = proc.clock() + 20
    while proc.clock() < deadline do
      local port = math.random(20000, 60000)
      if not listening(port) then
        self.port = port
        local r = ctl(self, { "-w", "-t", "15", "-l", self.dir .. "/server.log", "-o", opts_for(self),
          "start" }, 20)
        if r and r.code == 0 then return end
        if not self:log():match("in use") then
          error("postgres did not start: " .. tostring(r and r.stderr) .. "\n" .. self:log())
        end
        ctl(self, { "-m", "immediate", "stop" }, 10)
        self.port = nil
      end
    end
    error("postgres did not start within 20 s\n" .. self:log())
  end)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

local shared
--- One server for the whole spec process, started on first use and stopped when the
--- process ends (by the watchdog at the latest).
function M.shared()
  if not shared then
    shared = M.start()
    -- Stopped when the Lua state closes (busted ends with os.exit(code, true)).
    M._sentinel = setmetatable({}, { __gc = function() pcall(Server.stop, shared) end })
  end
  return shared
end

return M
