-- The PostgreSQL store's costs, measured in one run against a durable PostgreSQL 15 server
-- on loopback (fsync on), started here (tests/support/postgres.lua):
--  1. a no-op re-run of a completed recipe with 20 phases and 200 recorded steps through
--     PostgreSQL, against the same re-run on the folder store (target <= 5x);
--  2. recording 1,000 events through PostgreSQL, the server's fsync on, each committed
--     before its call returns (doc/store.md: an event that records no state change commits
--     asynchronously, durable within moments and with the next state change), against the
--     target of 1 s (target <= 1.0); and, for information, the same with the server's fsync
--     off, and on the folder store (an fdatasync per event) on this machine's disk;
--  3. for information: 200 state changes (r.state writes: each a synchronous commit,
--     waiting for the server's fsync) against the folder store's (atomic replace, fsync).
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
  local durable = record(url)
  bench.report("record 1,000 events through PostgreSQL (loopback, server fsync on)", "1,000 events",
    durable, "the 1 s target", 1.0, 1.0, "s")
  local folder = record("folder:" .. dir .. "/folder-store")
  bench.report("record 1,000 events, for information", "through PostgreSQL (fsync on)", durable,
    "the folder store (fdatasync each)", folder, nil, "s")
  -- What relua, libpq and the server do per event without the disk: the server's fsync off.
  srv:psql("alter system set fsync = off")
  srv:psql("select pg_reload_conf()")
  local fast = record(url)
  srv:psql("alter system reset fsync")
  srv:psql("select pg_reload_conf()")
  bench.report("record 1,000 events, for information", "server fsync on", durable,
    "server fsync off", fast, nil, "s")

  -- 3. State changes: each waits for the server's fsync, as each folder-store replace does.
  local S = 200
  local function writes(store)
    local res = run({ relua, "-e", string.format([[
      local proc = require "relua.proc"
      local json = require "relua.json"
      local st = assert(require("relua.core.store").open(%q))
      local lg = assert(st:ledger("S1"))
      lg:save({ schema = 1, ticket = "S1", created = "2026-01-01T00:00:00Z",
        recipe = { path = "/r.lua", name = "r" }, phases = json.array({ { name = "p", status = "pending" } }),
        state = {}, steps = {} })
      local t0 = proc.clock()
      for i = 1, %d do lg:set("K", i) end
      print(proc.clock() - t0)
      lg:close()
    ]], store, S) })
    return tonumber(res.stdout:match("[%d.e-]+"))
  end
  bench.report("200 state changes, for information", "through PostgreSQL (fsync on)",
    writes(url), "the folder store", writes("folder:" .. dir .. "/folder-store"), nil, "s")
end)
srv:stop()
fs.remove(dir, { recursive = true })
if not ok then error(err, 0) end
