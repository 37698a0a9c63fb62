-- Children do not outlive relua (issue 9, item 8). SIGHUP (a closed terminal or ssh
-- session) ends a run as SIGTERM does; a relua killed with kill -9 takes the processes it
-- started with it (PR_SET_PDEATHSIG), so none runs beside the resumed release.
local h = require "support.h"
local S = require "support.release"

-- A phase that writes its child's pid, then waits on it (a long sleep).
local RECIPE = [[
local fs = require "relua.fs"
return { phases = {
  { name = "deploy", run = function(r)
      if not fs.exists("go") then r:sh("echo $$ > child.pid; exec sleep 60") end
    end },
  { name = "verify", run = function() end },
} }
]]

-- Starts relua in the background until the child wrote its pid; sends `sig` to relua;
-- returns relua's exit status and the child's pid.
local function signalled(s, sig)
  local r = h.sh(h.quote(S.bin()) .. [[ release.lua T1 >out 2>err & pid=$!
    for i in $(seq 200); do [ -s child.pid ] && break; sleep 0.05; done
    kill -]] .. sig .. [[ $pid; wait $pid]], { cwd = s.dir, env = { RELUA_HOME = false } })
  return r.code, tonumber(s:read("child.pid"):match("%d+"))
end

-- Whether pid is alive (and not a zombie), waiting up to 5 s for it to go.
local function alive(pid)
  local r = h.sh("for i in $(seq 100); do s=$(ps -o stat= -p " .. pid .. " 2>/dev/null) || exit 1; "
    .. "case $s in Z*) exit 1;; esac; sleep 0.05; done; exit 0")
  return r.code == 0
end

describe("children of a relua run", function()
  after_each(S.cleanup)

  it("SIGHUP fails the phase like SIGTERM (rc=143), stops the child, and the release resumes", function()
    local s = S.sandbox()
    s:write("release.lua", RECIPE)
    local code, child = signalled(s, "HUP")
    assert.are.equal(143, code, s:read("err"))
    assert.matches("relua: phase deploy failed: terminated %(SIGHUP: the terminal or session went away%)", s:read("err"))
    assert.matches("release interrupted in phase deploy %(rc=143%)", s:read("err"))
    assert.are.equal("failed", s:statuses("T1").deploy)
    assert.is_false(alive(child), "the child outlived relua")
    s:write("go", "")
    local r = s:relua({ "release.lua", "T1" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("kill -9 of relua kills the child at once: nothing runs beside the resume", function()
    local s = S.sandbox()
    s:write("release.lua", RECIPE)
    local code, child = signalled(s, "KILL")
    assert.are.equal(137, code)
    assert.is_false(alive(child), "the child outlived relua")
    assert.are.equal("running", s:statuses("T1").deploy)
    s:write("go", "")
    local r = s:relua({ "release.lua", "T1" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("a script's child dies with it too", function()
    local s = S.sandbox()
    s:write("s.lua", [[
local proc = require "relua.proc"
proc.run({ "sh", "-c", "echo $$ > child.pid; exec sleep 60" })
]])
    local r = h.sh(h.quote(S.bin()) .. [[ s.lua & pid=$!
      for i in $(seq 200); do [ -s child.pid ] && break; sleep 0.05; done
      sleep 0.2; kill -9 $pid; wait $pid]], { cwd = s.dir })
    assert.are.equal(137, r.code)
    assert.is_false(alive(tonumber(s:read("child.pid"):match("%d+"))))
  end)
end)
