-- The host's own costs: start-up of the binary, and spawning a process with proc.run.
-- Each scenario is measured against its baseline in the same run, in alternating rounds,
-- and reported as the ratio of the medians with its target.
local proc = require "relua.proc"
local fs = require "relua.fs"

local ROUNDS = 5
local BASE = "build/bench/spawn_baseline"
local FLOOR = "build/bench/linked_floor"

local bench = require "benchlib"
local median = bench.median

-- Mean seconds per run of argv, N runs, timed by the C baseline program (posix_spawn +
-- waitpid only), so that both sides of a comparison pay the same harness.
local function c_timed(n, argv)
  local cmd = { BASE, tostring(n) }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local r = assert(proc.run(cmd))
  if r.code ~= 0 then error("bench: " .. table.concat(cmd, " ") .. " failed: " .. r.stderr) end
  return assert(tonumber(r.stdout), "bench: no timing from " .. BASE)
end

local report = bench.report

if not fs.exists(BASE) then
  error("bench: " .. BASE .. " is missing: run `make bench` (it builds the baselines)")
end
local relua = arg and arg[-1] or "./relua"
if not relua:find("/") then relua = "./relua" end

-- 1. start-up: relua -e '' against lua5.4 -e ''
local N = 40
local ours, theirs, floor = {}, {}, {}
for _ = 1, ROUNDS do
  ours[#ours + 1] = c_timed(N, { relua, "-e", "" })
  theirs[#theirs + 1] = c_timed(N, { "lua5.4", "-e", "" })
  if fs.exists(FLOOR) then floor[#floor + 1] = c_timed(N, { FLOOR }) end
end
local t_relua, t_lua = median(ours), median(theirs)
local ratio = report("start-up", "relua -e ''", t_relua, "lua5.4 -e ''", t_lua, 1.5)
if #floor > 0 and ratio > 1.5 then
  local t_floor = median(floor)
  local own = t_relua - t_floor
  print(string.format("  why: an empty C program linked against relua's %d shared libraries (libcurl, libgit2,"
      .. " libarchive and theirs) takes %.3f ms to start; relua's own start-up on top of that is %s",
    select(2, assert(proc.run { "ldd", FLOOR }).stdout:gsub("=>", "")), t_floor * 1000,
    own < 0.0003 and string.format("within the noise (%.3f ms)", own * 1000) or string.format("%.3f ms", own * 1000)))
end

-- 2. spawn: proc.run{"/bin/true"} against posix_spawn + waitpid
local M = 300
ours, theirs = {}, {}
for _ = 1, ROUNDS do
  theirs[#theirs + 1] = c_timed(M, { "/bin/true" })
  local t0 = proc.clock()
  for _ = 1, M do proc.run { "/bin/true" } end
  ours[#ours + 1] = (proc.clock() - t0) / M
end
report("spawn", 'proc.run{"/bin/true"}', median(ours), "posix_spawn+waitpid (C)", median(theirs), 1.3)
