-- The shipped release-run playbooks (playbooks/), end to end: the sandbox of `make demo`
-- (demo/release_run.lua: a real remote and checkout, a service that real processes stand
-- in for) reproduces each symptom for real, `relua diagnose` names the playbook,
-- `relua recover --yes` fixes, verifies and completes the release.
package.path = "demo/?.lua;" .. package.path
local h = require "support.h"
local gitfix = require "support.gitfix"
local json = require "relua.json"
local rr = require "release_run"

local RECIPE = h.root .. "/recipes/release.lua"

local function relua(sb, args, extra)
  local env = { RELUA_PLAYBOOKS = false, RELUA_STORE = false }
  for k, v in pairs(sb.env) do env[k] = v end
  for k, v in pairs(extra or {}) do env[k] = v end
  return h.relua(args, { cwd = sb.app, env = env })
end

local function events(sb)
  local out = {}
  local f = assert(io.open(sb.env.RELUA_HOME .. "/releases/1234.log"))
  for line in f:lines() do
    local ev = line:match(" event=(%S+)")
    if ev and ev:match("^playbook") then out[#out + 1] = ev end
  end
  f:close()
  return out
end

local function state(sb)
  return assert(json.decode(h.slurp(sb.env.RELUA_HOME .. "/releases/1234.json")))
end

-- Runs the release (which must fail), diagnose (which must name id as confirmed), then
-- recover --yes (which must complete the release).
local function scenario(sb, id, failed_phase, recover_args)
  local run = relua(sb, { RECIPE, "1234" })
  assert.are.equal(1, run.code, run.stdout .. run.stderr)
  assert.matches("phase " .. failed_phase .. " failed", run.stderr, 1, true)
  -- The failure message lists the matching playbook and the diagnose command.
  assert.matches("Matching playbooks:\n  " .. id, run.stderr, 1, true)
  assert.matches("relua diagnose 1234", run.stderr, 1, true)

  local diag = relua(sb, { "diagnose", "1234" })
  assert.are.equal(0, diag.code, diag.stderr)
  assert.matches("1. " .. id .. " [confirmed]", diag.stdout, 1, true)
  local dj = relua(sb, { "diagnose", "1234", "--json" })
  assert.are.equal(0, dj.code, dj.stderr)
  local d = assert(json.decode(dj.stdout))
  assert.are.equal(id, d.matches[1].id)
  assert.are.equal("confirmed", d.matches[1].status)
  assert.are.equal(failed_phase, d.failure.phase)

  local args = { "recover", "1234", "--yes" }
  for _, a in ipairs(recover_args or {}) do args[#args + 1] = a end
  local rec = relua(sb, args)
  assert.are.equal(0, rec.code, rec.stdout .. rec.stderr)
  assert.matches("playbook " .. id .. ": verified", rec.stdout, 1, true)
  assert.matches("release 1234 done: all 4 phases done", rec.stdout, 1, true)
  assert.are.same({ "playbook-detect", "playbook-fix", "playbook-fix", "playbook-verify", "playbook-verified" }, events(sb))
  local applied = state(sb).state["relua.playbooks"]
  assert.are.equal(id, applied[#applied].id)
  assert.are.equal("verified", applied[#applied].result)
  -- The release is really out: the checkout at the released commit, the service healthy on wiki:2.
  assert.are.equal(sb.head, gitfix.git(sb.app, "rev-parse", "HEAD"))
  assert.are.equal("healthy", rr.svc(sb, "health"))
  assert.are.equal("wiki:2", rr.svc(sb, "image"))
  local again = relua(sb, { RECIPE, "1234" })
  assert.matches("nothing to do", again.stdout, 1, true)
end

describe("the shipped release-run playbooks", function()
  local sb
  before_each(function() sb = rr.build() end)
  after_each(function()
    if sb then rr.remove(sb) end
    sb = nil
  end)

  it("release-verify-race (YAML): the probe raced a restart; waits and re-verifies", function()
    rr.faults.race(sb)
    scenario(sb, "release-verify-race", "verify")
  end)

  it("release-dirty-tree: shows what is there; the stash runs only with --adhoc", function()
    rr.faults.dirty(sb)
    local run = relua(sb, { RECIPE, "1234" })
    assert.are.equal(1, run.code)
    -- Without --adhoc nothing is stashed: verify fails, the ticket stays failed and resumable.
    local rec = relua(sb, { "recover", "1234", "--yes" })
    assert.are.equal(1, rec.code, rec.stdout .. rec.stderr)
    assert.matches("uncommitted: README", rec.stdout, 1, true)
    assert.matches("the ad hoc fix was not run", rec.stdout, 1, true)
    assert.matches("verify failed", rec.stderr, 1, true)
    assert.are.equal("the wiki, edited on the server\n", h.slurp(sb.app .. "/README"))
    assert.are.equal("failed", state(sb).phases[1].status)
    -- Diagnose still names it; with --adhoc the stash runs and the release completes.
    local diag = relua(sb, { "diagnose", "1234" })
    assert.matches("1. release-dirty-tree [confirmed]", diag.stdout, 1, true)
    local ok = relua(sb, { "recover", "1234", "--yes", "--adhoc" })
    assert.are.equal(0, ok.code, ok.stdout .. ok.stderr)
    assert.matches("release 1234 done", ok.stdout, 1, true)
    assert.matches("relua: found in the deployed checkout before ticket 1234", gitfix.git(sb.app, "stash", "list"), 1, true)
    assert.are.equal(sb.head, gitfix.git(sb.app, "rev-parse", "HEAD"))
  end)

  it("release-pre-pull: finds the pre-pull commit in the reflog, resets to it, releases", function()
    gitfix.git(sb.app, "pull", "-q", "--ff-only")
    assert.are.equal(sb.head, gitfix.git(sb.app, "rev-parse", "HEAD"))
    scenario(sb, "release-pre-pull", "prepare")
    -- BASE_SHA is the commit the deployment was really at, so a revert goes back there.
    assert.are.equal(sb.base, state(sb).state.BASE_SHA)
  end)

  it("release-image-drift: the recreate kept the old image; recreates and re-verifies", function()
    rr.faults.drift(sb)
    scenario(sb, "release-image-drift", "verify")
  end)

  it("release-stale-api-key: regenerates the key and resumes the ticket phase", function()
    rr.faults.stale_key(sb)
    scenario(sb, "release-stale-api-key", "ticket")
  end)
end)
