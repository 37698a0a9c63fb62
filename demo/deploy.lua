-- make demo DEMO=deploy: a real release in a throwaway sandbox (demo/release_run.lua: a
-- bare remote, a developer's clone, the deployed checkout and a service that real
-- processes stand in for).
-- The actual relua binary runs the shipped recipe (recipes/release.lua) the way an operator
-- would: the verify phase fails because the health probe raced the service's restart,
-- `relua status` shows where it stopped, `relua diagnose` names the shipped playbook that
-- answers it, `relua recover` waits, re-verifies and resumes the release, and a re-run
-- says "nothing to do". Each step is explained in plain words.
package.path = "demo/?.lua;" .. package.path
local fs = require "relua.fs"
local proc = require "relua.proc"
local gitlib = require "relua.git"
local rr = require "release_run"
local say = require("narrate").say

local RELUA = fs.abspath(arg and arg[-1] or "./relua")
local RECIPE = fs.abspath("recipes/release.lua")
local TICKET = rr.TICKET

local sb

local function fail(msg)
  io.stderr:write("demo: ", msg, "\n")
  if sb then rr.stop(sb) end
  os.exit(1)
end

-- ---------------------------------------------------------------- the sandbox
local ok, built = pcall(rr.build)
if not ok then fail(tostring(built)) end
sb = built
say("Setting up a throwaway sandbox in %s", sb.root)
print("  a bare remote (remote.git), a developer's clone (dev), the deployed checkout (app),")
print("  and a service, wikijs (svc.sh: a real background process), running image wiki:1.")
print("  A developer pushed ticket 1234: image wiki:2, a per-ticket script, a health check.")
rr.faults.race(sb)
print("  The service takes 3 seconds to come up after a restart; the health check runs once")
print("  (RELEASE_VERIFY_TRIES=1: no bounded retry, as before the runbook's retry helper).")

local ENV = sb.env
ENV.NO_COLOR = os.getenv("NO_COLOR")
ENV.RELUA_PLAYBOOKS = false

local function relua(args, expect)
  local shown = { "relua" }
  for _, a in ipairs(args) do shown[#shown + 1] = a end
  io.stdout:write("$ ", table.concat(shown, " "), "\n")
  io.stdout:flush()
  local argv = { RELUA }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local res, err = proc.run(argv, { cwd = sb.app, env = ENV, echo = true })
  if not res then fail(err) end
  if res.code ~= expect then
    fail(string.format("expected exit status %d from relua %s, got %s", expect, table.concat(args, " "), tostring(res.code)))
  end
  return res
end

-- ---------------------------------------------------------------- the release
say("1. The operator runs the release for ticket %s. The health check will fail.", TICKET)
relua({ RECIPE, TICKET }, 1)
print("\nrelua halted at the failed phase: nothing after it ran. It said how to resume or roll back,")
print("and which shipped playbook matches what it saw.")

say("2. Where did it stop? relua status reads the ticket's state file.")
relua({ "status", TICKET }, 0)

say("3. The audit log has one line per event; operators grep it for event=failed.")
local log = assert(fs.read(ENV.RELUA_HOME .. "/releases/" .. TICKET .. ".log"))
for line in log:gmatch("[^\n]+") do
  if line:match("event=failed") or line:match("event=start") or line:match("event=done") then print("  " .. line) end
end

say("4. Instead of a wiki page at 3 a.m.: relua diagnose runs the matching playbook's checks.")
relua({ "diagnose", TICKET }, 0)

say("5. relua recover applies it: fix, verify, and only then resume, under the ticket's lock.")
print("  (--yes: there is nobody to ask in a demo; on a terminal relua shows the plan and asks)")
relua({ "recover", TICKET, "--yes" }, 0)

say("6. Running it again is safe: every phase is done.")
relua({ RECIPE, TICKET }, 0)

say("7. The audit log records each stage of the recovery.")
log = assert(fs.read(ENV.RELUA_HOME .. "/releases/" .. TICKET .. ".log"))
for line in log:gmatch("[^\n]+") do
  if line:match("event=playbook") then print("  " .. line) end
end

local released <close> = assert(gitlib.open(sb.app))
if released:head().id ~= sb.head then fail("the deployed checkout is not at the released commit") end
if rr.svc(sb, "image") ~= "wiki:2" or rr.svc(sb, "health") ~= "healthy" then fail("the service is not healthy on wiki:2") end
say("Done: the checkout is at the released commit and wikijs runs wiki:2, healthy.")

if os.getenv("RELUA_DEMO_KEEP") then
  rr.stop(sb)
  print("sandbox kept (RELUA_DEMO_KEEP): " .. sb.root)
else
  rr.remove(sb)
  print("service stopped, sandbox removed (set RELUA_DEMO_KEEP=1 to keep it)")
end
