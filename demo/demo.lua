-- make demo: a real release in a throwaway sandbox. It builds a git repository with a bare
-- remote (relua.git), then runs the actual relua binary on the shipped recipe
-- (recipes/release.lua) the way an operator would: the migrate phase fails the first time,
-- `relua status` shows where it stopped, the cause is fixed, `--from=migrate` resumes, and
-- a re-run says "nothing to do". Each step is explained in plain words.
local fs = require "relua.fs"
local proc = require "relua.proc"
local gitlib = require "relua.git"

local RELUA = fs.abspath(arg and arg[-1] or "./relua")
local RECIPE = fs.abspath("recipes/release.lua")
local TICKET = "1234"

local function say(fmt, ...)
  io.stdout:write("\n\27[1m", string.format(fmt, ...), "\27[0m\n")
  io.stdout:flush()
end
if os.getenv("NO_COLOR") or not proc.isatty(1) then
  say = function(fmt, ...)
    io.stdout:write("\n== ", string.format(fmt, ...), "\n")
    io.stdout:flush()
  end
end

local function fail(msg)
  io.stderr:write("demo: ", msg, "\n")
  os.exit(1)
end

local sandbox = assert(fs.tmpdir("relua-demo"))
local AUTHOR = { name = "Demo", email = "demo@example.invalid" }

local function check(v, err)
  if not v then fail(err) end
  return v
end

local function write(path, content, mode)
  assert(fs.write(path, content, mode and { mode = mode } or nil))
end

-- ---------------------------------------------------------------- the sandbox
say("Setting up a throwaway sandbox in %s", sandbox)
local remote, dev, app, db = sandbox .. "/remote.git", sandbox .. "/dev", sandbox .. "/app", sandbox .. "/db"
assert(fs.mkdir(db))
write(db .. "/schema", "v1\n")
local bare <close> = check(gitlib.init(remote, { bare = true }))
local devrepo <close> = check(gitlib.clone(remote, dev))
write(dev .. "/README", "the wiki\n")
check(devrepo:commit("first version", { "README" }, { author = AUTHOR }))
local BRANCH = devrepo:head().branch
check(devrepo:push("origin", { BRANCH }))
local apprepo <close> = check(gitlib.clone(remote, app))
print("  a bare remote (remote.git), a developer's clone (dev), the deployed checkout (app),")
print("  and a 'database' (db/schema, now at v1).")

-- The change to release: a migration, a per-ticket script and a health check.
write(dev .. "/migrate.sh", [[
#!/bin/sh
echo "migrating the database from $(cat ../db/schema) to v2"
if [ ! -f ../db/space-freed ]; then
  echo "error: no space left on the database volume" >&2
  exit 1
fi
echo v2 > ../db/schema
echo "database now at v2"
]], 493)
write(dev .. "/verify.sh", [[
#!/bin/sh
test "$(cat ../db/schema)" = v2 && echo "health check: ok (schema v2, release $MERGE_SHA)"
]], 493)
assert(fs.mkdir(dev .. "/releases"))
write(dev .. "/releases/1234-search.lua", [[
local r = ...
r:log("ticket 1234: turning on the new search index")
]])
check(devrepo:commit("ticket 1234: schema v2 and the new search index",
  { "migrate.sh", "verify.sh", "releases/1234-search.lua" }, { author = AUTHOR }))
check(devrepo:push("origin", { BRANCH }))
print("  a developer pushed ticket 1234: a schema migration, a per-ticket script, a health check.")

local ENV = {
  RELUA_HOME = sandbox .. "/home",
  RELEASE_BRANCH = BRANCH,
  RELEASE_BACKUP = "cp ../db/schema ../db/schema.bak && echo schema.bak",
  RELEASE_RESTORE = "cp ../db/schema.bak ../db/schema",
  NO_COLOR = os.getenv("NO_COLOR"),
}

local function relua(args, expect)
  local shown = { "relua" }
  for _, a in ipairs(args) do shown[#shown + 1] = a end
  io.stdout:write("$ ", table.concat(shown, " "), "\n")
  io.stdout:flush()
  local argv = { RELUA }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local res, err = proc.run(argv, { cwd = app, env = ENV, echo = true })
  if not res then fail(err) end
  if res.code ~= expect then
    fail(string.format("expected exit status %d from relua %s, got %s", expect, table.concat(args, " "), tostring(res.code)))
  end
  return res
end

-- ---------------------------------------------------------------- the release
say("1. The operator runs the release for ticket %s. The migration will fail.", TICKET)
relua({ RECIPE, TICKET }, 1)
print("\nrelua halted at the failed phase: nothing after it ran, and it said how to resume or roll back.")

say("2. Where did it stop? relua status reads the ticket's state file.")
relua({ "status", TICKET }, 0)

say("3. The audit log has one line per event; operators grep it for event=failed.")
local log = assert(fs.read(ENV.RELUA_HOME .. "/releases/" .. TICKET .. ".log"))
for line in log:gmatch("[^\n]+") do
  if line:match("event=failed") or line:match("event=start") or line:match("event=done") then print("  " .. line) end
end

say("4. Fix the cause (free space on the database volume), not the symptom.")
write(db .. "/space-freed", "")
print("  touched db/space-freed")

say("5. Resume from the failed phase. prepare is skipped: its state (BASE_SHA, the backup) is reused.")
relua({ RECIPE, TICKET, "--from=migrate" }, 0)

say("6. Running it again is safe: every phase is done.")
relua({ RECIPE, TICKET }, 0)

say("7. All tickets at a glance.")
relua({ "list" }, 0)

local schema = assert(fs.read(db .. "/schema"))
if schema ~= "v2\n" then fail("the database should be at v2, it is " .. schema) end
local released <close> = check(gitlib.open(app))
if released:head().id ~= devrepo:head().id then fail("the deployed checkout is not at the released commit") end
say("Done: the checkout is at the released commit and the database at v2.")

if os.getenv("RELUA_DEMO_KEEP") then
  print("sandbox kept (RELUA_DEMO_KEEP): " .. sandbox)
else
  fs.remove(sandbox, { recursive = true })
  print("sandbox removed (set RELUA_DEMO_KEEP=1 to keep it)")
end
