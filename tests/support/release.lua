-- Helpers for the release engine's specs: a sandbox folder with recipes, running the
-- relua binary in it the way an operator does, and reading back what it left behind.
local h = require "support.h"
local json = require "relua.json"

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

--- A fresh folder; the ledger goes to DIR/.relua/releases (RELUA_HOME unset).
function M.sandbox()
  local d = shm_tmpdir()
  return setmetatable({ dir = d, rel = d .. "/.relua/releases" }, Sandbox)
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
  local e = { RELUA_HOME = false, RELUA_TEST_CRASH_AT = false }
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

--- The decoded state file of a ticket (asserts that it parses).
function Sandbox:state(ticket)
  local text = h.slurp(self.rel .. "/" .. ticket .. ".json")
  local v, err = json.decode(text)
  assert(v, err)
  return v
end

--- The audit log's lines.
function Sandbox:log_lines(ticket)
  local lines = {}
  for line in (h.slurp(self.rel .. "/" .. ticket .. ".log")):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  return lines
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
