-- A state edited by hand (issue 9, item 6): relua writes a check of the recorded phases
-- with every state (phases_digest); a file whose phases no longer match it (a failed phase
-- set to done) is reported by relua status and by the next run, which logs it
-- (event=state-edited), goes on from the file as it is, and writes it again with its check.
local h = require "support.h"
local S = require "support.release"
local json = require "relua.json"

local RECIPE = [[
return { phases = {
  { name = "build", run = function(r) end },
  { name = "deploy", run = function(r) if io.open("broken") then error("deploy broke") end end },
} }
]]

describe("a state file edited outside relua #folder", function()
  after_each(S.cleanup)

  local function failed_deploy()
    local s = S.sandbox()
    s:write("release.lua", RECIPE)
    s:write("broken", "")
    assert.are.equal(1, s:relua({ "release.lua", "T" }).code)
    return s
  end

  -- Rewrites the state file with fn(state) applied, as a person with an editor would.
  local function edit(s, fn)
    local path = s.rel .. "/T.json"
    local st = json.decode(h.slurp(path))
    fn(st)
    h.spit(path, json.encode(st, { pretty = true }) .. "\n")
  end

  it("relua writes the check, and its own states are not reported", function()
    local s = failed_deploy()
    assert.matches("^fnv1a64:%x+$", s:state("T").phases_digest)
    local r = s:relua({ "status", "T" })
    assert.is_nil(r.stdout:match("edited outside relua"), r.stdout)
  end)

  it("a failed phase set to done: status and the next run say so; the run logs it and goes on", function()
    local s = failed_deploy()
    edit(s, function(st) st.phases[2].status = "done"; st.phases[2].failure = nil end)
    local r = s:relua({ "status", "T" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("warning: the state file [^\n]*T%.json was edited outside relua: its recorded phases no longer match", r.stdout)
    assert.matches("run it again with %-%-from=PHASE", r.stdout)
    r = s:relua({ "status", "T", "--json" })
    assert.is_true(json.decode(r.stdout).edited)
    r = s:relua({ "release.lua", "T", "--dry-run" })
    assert.matches("relua: warning: the state file [^\n]*T%.json was edited outside relua", r.stderr)
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("relua: warning: the state file [^\n]*T%.json was edited outside relua", r.stderr)
    assert.matches("nothing to do", r.stdout)
    assert.matches("event=state%-edited file=[^\n]*T%.json", s:log_text("T"))
    -- said once: the run wrote the state again with its check; status points at the log
    r = s:relua({ "status", "T" })
    assert.is_nil(r.stdout:match("warning: the state file"), r.stdout)
    assert.matches("note: the state file was found edited outside relua by the run of %S+ %(relua log T%)", r.stdout)
    r = s:relua({ "release.lua", "T" })
    assert.is_nil(r.stderr:match("edited outside relua"), r.stderr)
  end)

  it("a state written before the check existed is not reported", function()
    local s = failed_deploy()
    edit(s, function(st) st.phases_digest = nil end)
    local r = s:relua({ "status", "T" })
    assert.is_nil(r.stdout:match("edited outside relua"), r.stdout)
    os.remove(s:path("broken"))
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:match("edited outside relua"), r.stderr)
    assert.matches("^fnv1a64:", s:state("T").phases_digest)
  end)
end)
