-- A full disk (issue 9, item 2). An audit-log line is written whole or not at all: a
-- write that stops short (a full disk: ENOSPC, or a file-size limit: EFBIG) is cut back
-- off, so the next event never starts inside a partial line. The failure names the file,
-- and once space is back a plain re-run finishes the release.
-- Two honest ways to run out of space: a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
-- ignored, write(2) stops short then fails with EFBIG: deterministic, any user) for the
-- log line; a small tmpfs a phase fills (needs root to mount; CI runs as root).
local S = require "support.release"
local h = require "support.h"

local LOG_LINE = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ ticket=T [^\n]*event=%S+[^\n]*$"

local function whole_lines(path)
  local log = h.slurp(path)
  if log == "" then return 0 end
  assert.are.equal("\n", log:sub(-1), "the log ends in a partial line")
  local n = 0
  for line in log:gmatch("([^\n]*)\n") do
    assert.matches(LOG_LINE, line)
    n = n + 1
  end
  return n
end

-- Many small state writes: the state stays small, each one logs a line.
local MANY = [[
return { phases = {
  { name = "many", run = function(r) for i = 1, 150 do r.state["K" .. i] = i end end },
  { name = "after", run = function(r) r.state.AFTER = true end },
} }
]]

describe("a full disk", function()
  after_each(S.cleanup)

  it("a log write cut short leaves no partial line; the re-run appends whole lines", function()
    local s = S.sandbox()
    s:write("release.lua", MANY)
    -- 12 KiB per file: the state (about 3 KiB) fits, the log (150 lines) does not
    local r = h.sh("trap '' XFSZ; ulimit -f 12; exec " .. h.quote(S.bin()) .. " release.lua T",
      { cwd = s.dir, env = { RELUA_HOME = false } })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("cannot write the audit log .*%.relua/releases/T%.log: File too large", r.stderr)
    local before = whole_lines(s.dir .. "/.relua/releases/T.log")
    assert.is_true(before > 10)
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.is_true(whole_lines(s.dir .. "/.relua/releases/T.log") > before)
    assert.are.equal("done", s:statuses("T").after)
  end)

  it("a ledger on a tmpfs a phase fills: the failure names the file; freed, a re-run finishes", function()
    local mnt = h.tmpdir()
    if h.sh("mount -t tmpfs -o size=256k relua-full " .. h.quote(mnt)).code ~= 0 then
      pending("mounting a tmpfs needs root (CI runs as root)")
      return
    end
    local ok, err = pcall(function()
      local s = S.sandbox()
      s:write("release.lua", ([[
return { phases = {
  { name = "fill", run = function(r)
      if not io.open("filled") then
        io.open("filled", "w"):close()
        os.execute("dd if=/dev/zero of=MNT/fill bs=4096 2>/dev/null")
      end
      for i = 1, 50 do r.state["K" .. i] = string.rep("x", 200) end
    end },
  { name = "after", run = function(r) r.state.AFTER = true end },
} }
]]):gsub("MNT", mnt))
      local env = { RELUA_HOME = mnt .. "/home" }
      local rel = mnt:gsub("%p", "%%%0") .. "/home/releases"
      local r = s:relua({ "release.lua", "T" }, env)
      assert.are.equal(1, r.code, r.stdout .. r.stderr)
      -- the phase's failure could not be recorded either: said, kept in the log, what to do
      assert.matches("relua: phase fill failed, but relua could not record it: cannot write the state file "
        .. rel .. "/T%.json: No space left on device", r.stderr)
      assert.matches("nothing is half%-written", r.stderr)
      assert.matches("kept in the audit log %(relua log T%)", r.stderr)
      assert.matches("free space on the file system of " .. rel .. " %(df %-h " .. rel .. "%), then run the release again: relua release%.lua T\n", r.stderr)
      whole_lines(mnt .. "/home/releases/T.log")
      assert.matches("phase=fill event=failed rc=1 [^\n]*unrecorded=\"cannot write the state file", h.slurp(mnt .. "/home/releases/T.log"))
      r = s:relua({ "status", "T" }, env)
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("ticket T: stopped in phase fill: the run could not record how it ended", r.stdout)
      assert.matches("phase fill failed at %S+ %(rc=1: cannot write the state file [^\n]*No space left on device%), and the run could not record it", r.stdout)
      assert.are.equal(0, h.sh("rm -f " .. h.quote(mnt .. "/fill")).code)
      r = s:relua({ "release.lua", "T" }, env)
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      assert.matches("note: phase fill failed in the last run %(rc=1: cannot write the state file [^\n]*%), which could not record it; recorded now", r.stdout)
      whole_lines(mnt .. "/home/releases/T.log")
      assert.matches("phase=fill event=settled [^\n]*rc=1", h.slurp(mnt .. "/home/releases/T.log"))
      assert.are.equal("done", (function()
        local st = require("relua.json").decode(h.slurp(mnt .. "/home/releases/T.json"))
        return st.phases[2].status
      end)())
    end)
    h.sh("umount " .. h.quote(mnt))
    assert(ok, err)
  end)

  -- A state already at the file-size limit: every write of it fails (EFBIG), the audit log
  -- (smaller) still takes lines. The phase's end cannot be recorded: the run says so, the
  -- log keeps it, status and the next run say what happened.
  local AT_LIMIT = [[
local limits = io.open("/proc/self/limits"):read("a")   -- sh's ulimit -f counts 512-byte blocks, bash's 1024
local LIMIT = tonumber(limits:match("Max file size%s+(%d+)"))
local function size() local f = io.open(".relua/releases/T.json") local n = f:seek("end") f:close() return n end
return { phases = {
  { name = "pad", run = function(r)
      r.state.PAD = "x"
      if LIMIT then r.state.PAD = string.rep("x", 1 + LIMIT - 24 - size()) end   -- 24 bytes below the limit
    end },
  { name = "after", run = function(r) r.state.AFTER = true end },
} }
]]

  local function limited(s)
    return h.sh("trap '' XFSZ; ulimit -f 12; exec " .. h.quote(S.bin()) .. " release.lua T",
      { cwd = s.dir, env = { RELUA_HOME = false } })
  end

  it("a phase that finished but cannot be recorded done is said, kept in the log and run again", function()
    local s = S.sandbox()
    s:write("release.lua", AT_LIMIT)
    local r = limited(s)
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("relua: phase pad finished, but relua could not record it: cannot write the state file [^\n]*T%.json: File too large", r.stderr)
    assert.matches("raise the file%-size limit %(ulimit %-f%), then run the release again: relua release%.lua T", r.stderr)
    assert.are.equal("running", s:statuses("T").pad)
    assert.matches("phase=pad event=done [^\n]*unrecorded=", s:log_text("T"))
    whole_lines(s.dir .. "/.relua/releases/T.log")
    r = s:relua({ "status", "T" })
    assert.matches("phase pad finished at %S+, but the run could not record it: cannot write the state file", r.stdout)
    assert.matches("the next run runs it again", r.stdout)
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("note: phase pad finished in the last run, which could not record it "
      .. "%(cannot write the state file [^\n]*File too large%); it runs again", r.stdout)
    assert.same({ pad = "done", after = "done" }, s:statuses("T"))
  end)

  it("a phase whose failure cannot be recorded: recorded failed with its reason by the next run", function()
    local s = S.sandbox()
    s:write("release.lua", (AT_LIMIT:gsub('%-%- 24 bytes below the limit',
      '\n      if not io.open("ok") then error("the deploy broke") end')))
    local r = limited(s)
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("relua: phase pad failed, but relua could not record it: cannot write the state file [^\n]*File too large", r.stderr)
    assert.matches("the phase failed with: [^\n]*the deploy broke", r.stderr)
    assert.are.equal("running", s:statuses("T").pad)
    r = s:relua({ "status", "T", "--json" })
    local st = require("relua.json").decode(r.stdout)
    assert.are.equal("pad", st.unrecorded[1].phase)
    assert.are.equal("failed", st.unrecorded[1].event)
    assert.matches("the deploy broke", st.unrecorded[1].msg)
    -- the next run (still failing) records the failure first, with its reason
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("note: phase pad failed in the last run %(rc=1: [^\n]*the deploy broke%), which could not record it %(cannot write", r.stdout)
    local events = s:events("T", { settled = true, start = true, failed = true })
    assert.same({ "pad:start", "pad:failed", "pad:settled", "pad:start", "pad:failed" }, events)
    s:write("ok", "")
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
  end)
end)
