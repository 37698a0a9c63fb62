-- The release engine's costs, measured in one run against baselines:
--  1. a no-op re-run ("nothing to do") of a completed recipe with 20 phases and 200
--     recorded steps, against `relua -e ''` (target <= 3x);
--  2. one durable state write (r.state.KEY = v with those 200 steps in the state), against
--     fs.write of the same bytes (the same temp + fsync + rename + fsync dir);
--  3. one audit-log event, against fs.append of a line of the same size with sync.
-- The ledger lives in a temporary folder under $TMPDIR or /tmp (a real disk: fsync counts).
local proc = require "relua.proc"
local fs = require "relua.fs"
local ledger = require "relua.core.ledger"

local ROUNDS = 5

local bench = require "benchlib"
local median = bench.median

local report = bench.report

local relua = fs.abspath(arg and arg[-1] or "./relua")
local dir = assert(fs.tmpdir("relua-bench"))

bench.write_rerun_recipe(dir)  -- 20 phases with 10 steps each
local run = bench.runner(dir)

run({ relua, "recipe.lua", "B1" }) -- the real run: 20 phases, 200 steps recorded
local res = run({ relua, "recipe.lua", "B1" })
assert(res.stdout:match("nothing to do"), "bench: the re-run should have nothing to do")

-- 1. the no-op re-run against relua -e ''
local N = 20
local ours, theirs = {}, {}
for _ = 1, ROUNDS do
  local t0 = proc.clock()
  for _ = 1, N do run({ relua, "-e", "" }) end
  theirs[#theirs + 1] = (proc.clock() - t0) / N
  t0 = proc.clock()
  for _ = 1, N do run({ relua, "recipe.lua", "B1" }) end
  ours[#ours + 1] = (proc.clock() - t0) / N
end
report("no-op re-run (20 phases, 200 steps)", "relua recipe.lua B1", median(ours), "relua -e ''", median(theirs), 3.0)

-- 2 and 3, in-process on the same ledger
local lg = assert(ledger.open(dir .. "/.relua/releases", "B1"))
local state = lg:state()
local bytes = #require("relua.json").encode(state, { pretty = true })
local W = 30
local writes, plain = {}, {}
for round = 1, ROUNDS do
  local t0 = proc.clock()
  for i = 1, W do lg:set("BENCH", round * 1000 + i) end
  writes[#writes + 1] = (proc.clock() - t0) / W
  local data = string.rep("x", bytes)
  t0 = proc.clock()
  for _ = 1, W do assert(fs.write(dir .. "/plain.json", data)) end
  plain[#plain + 1] = (proc.clock() - t0) / W
end
report(string.format("durable state write (%d bytes)", bytes), "r.state.KEY = v", median(writes),
  "fs.write of the same size", median(plain))

local E = 100
local events, appends = {}, {}
for _ = 1, ROUNDS do
  local t0 = proc.clock()
  for i = 1, E do lg:log("bench", { phase = "phase01", n = i, msg = "a log event of ordinary size" }) end
  events[#events + 1] = (proc.clock() - t0) / E
  local line = "2026-05-18T10:00:00Z ticket=B1 phase=phase01 event=bench n=100 msg=\"a log event of ordinary size\"\n"
  t0 = proc.clock()
  for _ = 1, E do assert(fs.append(dir .. "/plain.log", line, { sync = true })) end
  appends[#appends + 1] = (proc.clock() - t0) / E
end
report("audit log event", "lg:log", median(events), "fs.append{sync=true} of the same line", median(appends))
lg:close()
fs.remove(dir, { recursive = true })
