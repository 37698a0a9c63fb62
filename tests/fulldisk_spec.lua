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
      local r = s:relua({ "release.lua", "T" }, env)
      assert.are.equal(1, r.code, r.stdout .. r.stderr)
      assert.matches("cannot write the state file.- " .. mnt:gsub("%p", "%%%0") .. "/home/releases/T%.json: No space left on device", r.stderr)
      whole_lines(mnt .. "/home/releases/T.log")
      assert.are.equal(0, h.sh("rm -f " .. h.quote(mnt .. "/fill")).code)
      r = s:relua({ "release.lua", "T" }, env)
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      whole_lines(mnt .. "/home/releases/T.log")
      assert.are.equal("done", (function()
        local st = require("relua.json").decode(h.slurp(mnt .. "/home/releases/T.json"))
        return st.phases[2].status
      end)())
    end)
    h.sh("umount " .. h.quote(mnt))
    assert(ok, err)
  end)
end)
