-- A refused run leaves nothing behind (issue 9): a bad --from on a new ticket, a corrupt
-- state, a paused lane, a ticket another run holds. The ledger folder holds what it held
-- before: no empty TICKET.log, TICKET.lock or TICKET/ output folder. Removing a lock file
-- is safe because relua_lock_take checks that the file it locked is still at the path.
local h = require "support.h"
local S = require "support.release"

local TWO = [[
return { phases = {
  { name = "one", run = function(r)
      if os.getenv("WAIT_FOR") then
        io.open("started", "w"):close()
        for _ = 1, 1200 do if io.open(os.getenv("WAIT_FOR")) then return end r:sh("sleep 0.05") end
      end
    end },
  { name = "two", run = function(r) end },
} }
]]

-- The names in the sandbox's ledger folder, sorted ("" when it does not exist).
local function listing(s)
  local p = io.popen("ls -A " .. h.quote(s.rel) .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  return out
end

local function wait_for(path)
  for _ = 1, 600 do
    local f = io.open(path)
    if f then f:close() return end
    os.execute("sleep 0.05")
  end
  error("timed out waiting for " .. path)
end

describe("a refused run #folder", function()
  after_each(S.cleanup)

  it("a bad --from on a new ticket leaves no log, lock or output folder", function()
    local s = S.sandbox()
    s:write("release.lua", TWO)
    local r = s:relua({ "release.lua", "T", "--from=nope" })
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("unknown phase \"nope\"", r.stderr)
    assert.are.equal(".gitignore\n", listing(s))
    -- and a run after it goes as usual
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.equal(".gitignore\nT\nT.json\nT.lock\nT.log\n", listing(s))
  end)

  it("a corrupt state is left alone, and nothing is added beside it", function()
    local s = S.sandbox()
    s:write(".relua/releases/T.json", "{")
    s:write("release.lua", TWO)
    local r = s:relua({ "release.lua", "T" })
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("does not parse", r.stderr)
    assert.are.equal("{", s:read(".relua/releases/T.json"))
    assert.is_nil(listing(s):match("T%.l") or listing(s):match("T\n"), listing(s))
  end)

  it("a paused lane refuses a new ticket without leaving anything", function()
    local s = S.sandbox()
    s:write("release.lua", TWO)
    local r = s:relua({ "pause", "--lane", "main", "--sha", string.rep("a", 40), "--reason", "broken" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(3, r.code, r.stdout .. r.stderr)
    assert.are.equal(".gitignore\n", listing(s))
  end)

  it("a run refused because another holds the ticket adds nothing; the holder finishes", function()
    local s = S.sandbox()
    s:write("release.lua", TWO)
    local holder = h.sh("(" .. h.quote(S.bin()) .. " release.lua T > holder.out 2>&1; echo $? > holder.rc) &",
      { cwd = s.dir, env = { RELUA_HOME = false, WAIT_FOR = "go" } })
    assert.are.equal(0, holder.code)
    wait_for(s:path("started"))
    local before = listing(s)
    local r = s:relua({ "release.lua", "T" })
    assert.are.equal(3, r.code, r.stdout .. r.stderr)
    assert.matches("locked by another run", r.stderr)
    assert.are.equal(before, listing(s))
    s:write("go", "")
    wait_for(s:path("holder.rc"))
    assert.are.equal("0\n", s:read("holder.rc"), s:read("holder.out"))
  end)

  it("a waiter whose lock file was removed by the holder takes the file now at the path", function()
    local s = S.sandbox()
    local lockfile = s:path("the.lock")
    -- A holds the lock, removes the file (as a refused run tidies up) and lets go; B was
    -- waiting with the old file open. B must hold the lock of the file at the path. Both
    -- give up after a minute whatever happens, and B is waited for.
    local a = [[local fs = require "relua.fs"
local l = assert(fs.lock(arg[1])); io.open("a-held", "w"):close()
for _ = 1, 1200 do if io.open("go") then break end os.execute("sleep 0.05") end
os.remove(arg[1]); l:close()]]
    local b = [[local fs = require "relua.fs"
local l = assert(fs.lock(arg[1], { wait = true })); io.open("b-held", "w"):close()
for _ = 1, 1200 do if io.open("done") then break end os.execute("sleep 0.05") end
l:close(); io.open("b-exited", "w"):close()]]
    s:write("a.lua", a)
    s:write("b.lua", b)
    local bin = h.quote(S.bin())
    assert.are.equal(0, h.sh("(" .. bin .. " a.lua " .. h.quote(lockfile) .. " >a.out 2>&1 &)", { cwd = s.dir }).code)
    wait_for(s:path("a-held"))
    assert.are.equal(0, h.sh("(" .. bin .. " b.lua " .. h.quote(lockfile) .. " >b.out 2>&1 &)", { cwd = s.dir }).code)
    s:write("go", "")
    wait_for(s:path("b-held"))
    local l, _, code = require("relua.fs").lock(lockfile)
    if l then l:close() end
    s:write("done", "")
    wait_for(s:path("b-exited"))   -- no process outlives the test
    assert.are.equal("locked", code, "two holders of one lock")
  end)
end)
