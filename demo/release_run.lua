-- The release-run sandbox of `make demo` and of tests/playbook_release_spec.lua: a bare
-- remote, a developer's clone, the deployed checkout (app) and a "service" that real
-- processes stand in for (svc.sh: a background process that becomes healthy after
-- SVC_BOOT seconds, runs the image it pulled, and answers API calls with a key). The
-- developer has pushed ticket 1234: a new image in the manifest (wiki:2), a migration
-- that recreates the service, a per-ticket script calling the service's API, and a health
-- check. Each fault the shipped release-run playbooks answer can be injected.
local fs = require "relua.fs"
local gitlib = require "relua.git"
local proc = require "relua.proc"

local M = {}

M.TICKET = "1234"
local AUTHOR = { name = "Demo", email = "demo@example.invalid" }

local SVC = [[
#!/bin/sh
# A stand-in for a container runtime: one service, "wikijs".
D=$(dirname "$0")/svc
case "$1" in
  start)    # recreate: stop it, start it on the pulled image; healthy after $SVC_BOOT s
    "$0" stop
    cp "$D/pulled" "$D/running"
    if [ "${SVC_BOOT:-0}" = 0 ]; then  # up at once: healthy before start returns
      echo healthy > "$D/health"
      ( exec sleep 600 ) </dev/null >/dev/null 2>&1 &
    else
      echo starting > "$D/health"
      ( sleep "$SVC_BOOT"; echo healthy > "$D/health"; exec sleep 600 ) </dev/null >/dev/null 2>&1 &
    fi
    echo $! > "$D/pid" ;;
  recreate) # what migrate does: pull (unless the pull is broken), then start
    [ -f "$D/no-pull" ] || "$0" pull
    "$0" start ;;
  pull)     cat "${SVC_MANIFEST:-manifest}" > "$D/pulled" ;;
  stop)     [ -f "$D/pid" ] && kill "$(cat "$D/pid")" 2>/dev/null; rm -f "$D/pid"; echo stopped > "$D/health" ;;
  health)   cat "$D/health" ;;
  image)    cat "$D/running" ;;
  configure) cat "$D/key" > "$D/client-key"; echo "wikijs: API key regenerated" ;;
  api)      # an API call with the deployment's key
    if [ "$(cat "$D/key")" != "$(cat "$D/client-key")" ]; then
      echo "[WIKIJS] ERROR: could not read $2 config: Forbidden" >&2; exit 1
    fi
    echo "wikijs: $2: ok" ;;
  *) echo "usage: svc.sh start|recreate|pull|stop|health|image|configure|api NAME" >&2; exit 2 ;;
esac
]]

local VERIFY = [[
#!/bin/sh
# The health check: the service is healthy and runs the manifest's image.
fail=0
h=$("$SVC" health)
if [ "$h" = healthy ]; then echo "ok wikijs.healthy"; else echo "✗ wikijs.healthy: unhealthy ($h)"; fail=1; fi
got=$("$SVC" image); want=$(cat manifest)
if [ "$got" = "$want" ]; then echo "ok wikijs.image: $got"; else echo "✗ wikijs.image: got $got, expected $want"; fail=1; fi
exit $fail
]]

local MIGRATE = [[
#!/bin/sh
echo "recreating wikijs on $(cat manifest)"
"$SVC" recreate
]]

-- The ticket's own script, in shell as the runbook's releases/<ticket>-*.sh are.
local TICKET_SCRIPT = [[
#!/bin/sh
echo "ticket 1234: the new theme"
"$SVC" api theming
]]

local function check(v, err)
  if not v then error(err, 2) end
  return v
end

local function write(path, content, mode)
  check(fs.write(path, content, mode and { mode = mode } or nil))
end

--- Builds the sandbox in a new temporary folder. Returns {root=, app=, dev=, remote=,
--- svc=, env=, branch=, head=}; call M.stop(sb) to stop the service, M.remove(sb) after.
function M.build()
  local root = check(fs.tmpdir("relua-release-run"))
  local sb = { root = root, app = root .. "/app", dev = root .. "/dev", remote = root .. "/remote.git",
    svc = root .. "/svc.sh", state = root .. "/svc" }
  check(fs.mkdir(sb.state))
  write(sb.svc, SVC, 493)
  write(sb.state .. "/key", "key-2\n")
  write(sb.state .. "/client-key", "key-2\n")
  local bare <close> = check(gitlib.init(sb.remote, { bare = true }))
  local dev <close> = check(gitlib.clone(sb.remote, sb.dev))
  write(sb.dev .. "/README", "the wiki\n")
  write(sb.dev .. "/manifest", "wiki:1\n")
  write(sb.dev .. "/verify.sh", VERIFY, 493)
  write(sb.dev .. "/migrate.sh", MIGRATE, 493)
  check(dev:commit("the wiki, deployed", { "README", "manifest", "verify.sh", "migrate.sh" }, { author = AUTHOR }))
  sb.branch = dev:head().branch
  check(dev:push("origin", { sb.branch }))
  local app <close> = check(gitlib.clone(sb.remote, sb.app))
  sb.base = app:head().id
  -- The service runs the deployed image.
  sb.env = {
    SVC = sb.svc, RELUA_HOME = root .. "/home", RELEASE_BRANCH = sb.branch,
    RELEASE_RECREATE = sb.svc .. " pull && " .. sb.svc .. " start",
    RELEASE_KEY_REGEN = sb.svc .. " configure", RELEASE_KEY_CHECK = sb.svc .. " api ping",
    SVC_MANIFEST = sb.app .. "/manifest",
    -- the health check runs once, as the runbook's did before its retry helper (#3918):
    -- the race below fails verify, and the playbook recovers it
    RELEASE_VERIFY_TRIES = "1",
  }
  M.svc(sb, "pull")
  M.svc(sb, "start")
  -- Ticket 1234: the new image, its per-ticket script.
  write(sb.dev .. "/manifest", "wiki:2\n")
  check(fs.mkdir(sb.dev .. "/releases"))
  write(sb.dev .. "/releases/1234-theme.sh", TICKET_SCRIPT, 493)
  check(dev:commit("ticket 1234: wiki:2 and the new theme", { "manifest", "releases/1234-theme.sh" }, { author = AUTHOR }))
  check(dev:push("origin", { sb.branch }))
  sb.head = dev:head().id
  return sb
end

--- Runs svc.sh with the sandbox's environment.
function M.svc(sb, ...)
  local res = check(proc.run({ sb.svc, ... }, { env = sb.env, cwd = sb.app }))
  if res.code ~= 0 then error("svc.sh " .. table.concat({ ... }, " ") .. ": " .. res.stderr, 2) end
  return (res.stdout:gsub("%s+$", ""))
end

--- Faults, as the seed's runbook lists them.
M.faults = {
  -- The service takes longer to come up after a recreate than verify waits.
  race = function(sb) sb.env.SVC_BOOT = "3" end,
  -- Someone left an edit in the deployed checkout.
  dirty = function(sb) write(sb.app .. "/README", "the wiki, edited on the server\n") end,
  -- The recreate does not pull the new image.
  drift = function(sb) write(sb.state .. "/no-pull", "") end,
  -- The service's key was regenerated; the deployment holds the old one.
  stale_key = function(sb) write(sb.state .. "/key", "key-3\n") end,
}

--- Stops the service.
function M.stop(sb)
  pcall(M.svc, sb, "stop")
end

--- Stops the service and removes the sandbox.
function M.remove(sb)
  M.stop(sb)
  fs.remove(sb.root, { recursive = true })
end

return M
