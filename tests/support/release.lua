-- Helpers for the release engine's specs: a sandbox folder with recipes, running the
-- relua binary in it the way an operator does, and reading back what it left behind.
local h = require "support.h"
local store_core = require "relua.core.store"

-- RELUA_TEST_STORE: run the release specs against that store instead of each sandbox's
-- folder. "postgres": the suite's PostgreSQL server (tests/support/postgres.lua), a fresh
-- database per sandbox. Otherwise a URL where "%s" is replaced by a name unique to the
-- sandbox (e.g. folder:/srv/relua-%s), so sandboxes never share tickets.
-- Specs tagged #folder look at the folder store's files and only run without it.
local TEST_STORE = os.getenv("RELUA_TEST_STORE")
if TEST_STORE == "" then TEST_STORE = nil end

local M = {}

local Sandbox = {}
Sandbox.__index = Sandbox

local dirs = {}

-- Sandboxes live in memory (/dev/shm) when there is one: fsync there costs nothing, and a
-- kill -9 (what the crash specs inflict) is the same on any file system.
local function shm_tmpdir()
  local p = io.popen("mktemp -d /dev/shm/relua-test.XXXXXX 2>/dev/null"):read("l")
  if not p or p == "" then return h.tmpdir() end
  dirs[#dirs + 1] = p
  return p
end

--- Removes the sandboxes (and h's temporary folders).
function M.cleanup()
  for i = #dirs, 1, -1 do
    os.execute("rm -rf " .. h.quote(dirs[i]))
    dirs[i] = nil
  end
  h.cleanup()
end

--- A fresh folder; the ledger goes to DIR/.relua/releases (RELUA_HOME unset), or to
--- RELUA_TEST_STORE when set.
function M.sandbox()
  local d = shm_tmpdir()
  local s = setmetatable({ dir = d, rel = d .. "/.relua/releases" }, Sandbox)
  if TEST_STORE == "postgres" then
    s.store_url = require("support.postgres").shared():database()
  elseif TEST_STORE then
    s.store_url = TEST_STORE:gsub("%%s", ((d:match("([^/]+)$") or d):gsub("[^%w]", "_"):lower()))
  end
  return s
end

--- The store the sandbox's runs use (relua.core.store), for reading back what they left.
function Sandbox:store()
  local url = self.store_url or ("folder:" .. self.rel:gsub("/releases$", ""))
  if self._store_url ~= url then
    self._store = assert(store_core.open(url))
    self._store_url = url
  end
  return self._store
end

--- Writes a file in the sandbox; returns its name.
function Sandbox:write(name, content)
  local dir = name:match("^(.*)/[^/]*$")
  if dir then os.execute("mkdir -p " .. h.quote(self.dir .. "/" .. dir)) end
  h.spit(self.dir .. "/" .. name, content)
  return name
end

--- Runs relua in the sandbox: {code=, stdout=, stderr=}.
function Sandbox:relua(args, env)
  local e = { RELUA_HOME = false, RELUA_TEST_CRASH_AT = false, RELUA_STORE = self.store_url or false }
  for k, v in pairs(env or {}) do e[k] = v end
  local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
  local parts = { h.quote(bin) }
  for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
  -- "; exit $?" keeps the shell's own "Killed" notice in the captured stderr
  return h.sh(table.concat(parts, " ") .. "; exit $?", { cwd = self.dir, env = e })
end

--- The relua binary under test, as an absolute path.
function M.bin()
  return h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
end

function Sandbox:path(name) return self.dir .. "/" .. name end
function Sandbox:read(name) return h.slurp(self.dir .. "/" .. name) end
function Sandbox:exists(name)
  local f = io.open(self.dir .. "/" .. name, "r")
  if f then f:close() return true end
  return false
end

--- The state of a ticket, read through its store (asserts that it is sound), and its
--- version.
function Sandbox:state(ticket)
  local v, version = self:store():read(ticket)
  assert(v, version)
  return v, version
end

--- The audit log as text.
function Sandbox:log_text(ticket)
  return assert(self:store():events(ticket))
end

--- The audit log's lines.
function Sandbox:log_lines(ticket)
  local lines = {}
  for line in self:log_text(ticket):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  return lines
end

--- What a phase wrote to its output file ("" when nothing).
function Sandbox:out(ticket, phase)
  local dir = self:store():outdir(ticket)
  if dir:sub(1, 1) ~= "/" then dir = self.dir .. "/" .. dir end
  return h.slurp(dir .. "/" .. phase .. ".out")
end

--- The events of the audit log as "phase:event" strings (phase "-" when none).
function Sandbox:events(ticket, filter)
  local out = {}
  for _, line in ipairs(self:log_lines(ticket)) do
    local ev = line:match(" event=(%S+)")
    local ph = line:match(" phase=(%S+)") or "-"
    if not filter or filter[ev] then out[#out + 1] = ph .. ":" .. ev end
  end
  return out
end

--- Status of each phase in the state file: {name = status}.
function Sandbox:statuses(ticket)
  local t = {}
  for _, p in ipairs(self:state(ticket).phases) do t[p.name] = p.status end
  return t
end

--- Counts the lines of a side file the recipes append to ("key" per step run).
function Sandbox:counts(name)
  local c = {}
  for line in (h.slurp(self.dir .. "/" .. (name or "ran.txt"))):gmatch("([^\n]+)") do
    c[line] = (c[line] or 0) + 1
  end
  return c
end

--- A recipe of n phases named p1..pn whose phase i runs `steps` steps (each appends its
--- key to ran.txt) and records state; phase `fail` fails while the file `broken` exists.
function M.recipe_source(n, steps, opts)
  opts = opts or {}
  local parts = { "local function mark(k) local f = assert(io.open('ran.txt', 'a')) f:write(k, '\\n') f:close() end",
    "return { name = 'gen', phases = {" }
  for i = 1, n do
    parts[#parts + 1] = string.format([[
  { name = "p%d", run = function(r)
      for s = 1, %d do
        local k = "p%d-s" .. s
        r:step(k, function() mark(k) return { n = s, phase = "p%d" } end)
      end
      r.state.P%d = "v%d"
      %s
    end,
    revert = function(r) mark("revert-p%d") end },]], i, steps, i, i, i, i,
      opts.fail == i and "if io.open('broken') then error('p" .. i .. " is broken') end" or "", i)
  end
  parts[#parts + 1] = "}}"
  return table.concat(parts, "\n")
end

return M
