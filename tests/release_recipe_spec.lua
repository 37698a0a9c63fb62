-- The shipped recipe (recipes/release.lua) on real repositories: a bare repository served
-- over smart HTTP (tests/support/githttp.lua), a developer's clone that pushes to it, and a
-- deployed checkout that the recipe releases. A deploy target stands in for the service:
-- target/ counts every backup, restore, migration and per-ticket script run, so a re-run
-- is seen to deploy nothing twice.
local h = require "support.h"
local S = require "support.release"
local githttp = require "support.githttp"
local git = require "relua.git"
local fs = require "relua.fs"
local json = require "relua.json"

local AUTHOR = { name = "Spec", email = "spec@example.invalid" }
local RECIPE = h.root .. "/recipes/release.lua"

local srv
local repos = 0

-- The deployment's scripts, pushed with the release. Each appends to a count file in
-- ../target; a file in ../target breaks the step it names.
local SCRIPTS = {
  ["migrate.sh"] = "#!/bin/sh\nT=../target\n[ -f $T/migrate-broken ] && { echo 'migrate: wikijs did not come up' >&2; exit 4; }\n"
    .. "echo \"$MERGE_SHA\" >> $T/migrations\necho migrated\n",
  -- the health check: unhealthy while target/unhealthy exists, or for as many checks as
  -- target/starting says (each check counts one down)
  ["verify.sh"] = "#!/bin/sh\nT=../target\n[ -f $T/unhealthy ] && { echo '✗ wikijs.healthy: unhealthy'; exit 1; }\n"
    .. "n=$(cat $T/starting 2>/dev/null || echo 0)\n"
    .. "if [ \"$n\" -gt 0 ]; then echo $((n - 1)) > $T/starting; echo '✗ wikijs.healthy: starting'; exit 1; fi\n"
    .. "echo 'ok wikijs.healthy'\n",
}

-- remote (served by srv), dev (pushes), app (the checkout released), target/ (counts).
local function world()
  local s = S.sandbox()
  repos = repos + 1
  local name = "app" .. repos .. ".git"
  srv:bare(name)
  local url = srv:url(name)
  local cred = { username = srv.user, password = srv.password }
  local dev = s.dir .. "/dev"
  local d = assert(git.clone(url, dev, cred))
  -- the served repository's HEAD is main: commit there (a clone of an empty one is unborn)
  assert(fs.write(dev .. "/.git/HEAD", "ref: refs/heads/main\n"))
  assert(fs.write(dev .. "/README", "v1\n"))
  assert(d:commit("v1", { "README" }, { author = AUTHOR }))
  local branch = d:head().branch
  assert(d:push("origin", { branch }, cred))
  local a = assert(git.clone(url, s.dir .. "/app", cred))
  a:close()
  assert(fs.mkdir(s.dir .. "/target"))
  -- the backup (prints its name last) and the restore, outside the checkout
  assert(fs.write(s.dir .. "/backup.sh", "#!/bin/sh\nT=../target\n"
    .. "[ -f $T/backup-broken ] && { echo 'pg_dump: connection refused' >&2; exit 3; }\n"
    .. "echo \"db-$RELUA_TICKET.tar\" >> $T/backups\necho dumping\necho \"db-$RELUA_TICKET.tar\"\n", { mode = 493 }))
  assert(fs.write(s.dir .. "/restore.sh", "#!/bin/sh\necho \"$BACKUP\" >> ../target/restores\n", { mode = 493 }))
  s.rel = s.dir .. "/home/releases"
  local w = { s = s, dev = d, branch = branch }
  function w.push(files, msg)
    local paths = {}
    for file, content in pairs(files) do
      local dir = file:match("^(.*)/")
      if dir then assert(fs.mkdir(dev .. "/" .. dir)) end
      assert(fs.write(dev .. "/" .. file, content, content:match("^#!") and { mode = 493 } or nil))
      paths[#paths + 1] = file
    end
    table.sort(paths)
    return assert(d:commit(msg or "change", paths, { author = AUTHOR })), assert(d:push("origin", { branch }, cred))
  end
  function w.run(args, env)
    local e = { RELEASE_BRANCH = branch, RELUA_HOME = s.dir .. "/home", RELUA_STORE = s.store_url or false,
      RELUA_GIT_USERNAME = srv.user, RELUA_GIT_PASSWORD = srv.password, RELUA_GIT_TOKEN = false,
      RELEASE_VERIFY_DELAY = "0.05", RELUA_PLAYBOOKS = false }
    for k, v in pairs(env or {}) do e[k] = v end
    local parts = { h.quote(S.bin()) }
    for _, x in ipairs(args) do parts[#parts + 1] = h.quote(x) end
    return h.sh(table.concat(parts, " "), { cwd = s.dir .. "/app", env = e })
  end
  function w.head()
    local r = assert(git.open(s.dir .. "/app"))
    local id = r:head().id
    r:close()
    return id
  end
  -- The lines of target/NAME ({} when it does not exist).
  function w.count(file)
    local out = {}
    for l in (fs.read(s.dir .. "/target/" .. file) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
    return out
  end
  -- The release of ticket 77: the deployment's scripts and the ticket's own files.
  function w.release(files)
    local all = { ["manifest"] = "wiki:2\n" }
    for k, v in pairs(SCRIPTS) do all[k] = v end
    for k, v in pairs(files or {}) do all[k] = v end
    return (w.push(all, "ticket 77"))
  end
  w.env = { RELEASE_BACKUP = s.dir .. "/backup.sh", RELEASE_RESTORE = s.dir .. "/restore.sh" }
  function w.fault(file, content) assert(fs.write(s.dir .. "/target/" .. file, content or "")) end
  function w.clear(file) assert(os.remove(s.dir .. "/target/" .. file)) end
  return w
end

describe("recipes/release.lua", function()
  setup(function() srv = githttp.start({ user = "deploy", password = "s3cret-deploy" }) end)
  teardown(function() if srv then srv:stop() end end)
  after_each(function() S.cleanup() end)

  it("releases the remote's branch into the checkout, migrates, runs the ticket's files, verifies", function()
    local w = world()
    local base = w.head()
    local target = w.push({
      ["migrate.sh"] = "#!/bin/sh\necho migrated > ../migrated\n",
      ["verify.sh"] = "#!/bin/sh\ntest -f ../migrated\n",
      ["releases/77-a.lua"] = "local r = ... r.state.TICKET_RAN = true",
    })
    local r = w.run({ RECIPE, "77" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(target, w.head())
    assert.is_true(w.s:exists("migrated"))
    local st = w.s:state("77")
    assert.are.equal(base, st.state.BASE_SHA)
    assert.are.equal(target, st.state.MERGE_SHA)
    assert.is_true(st.state.TICKET_RAN)
    assert.are.equal(target, st.steps.merge.result)
    -- revert puts the checkout back at BASE_SHA
    r = w.run({ "revert", "77" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(base, w.head())
  end)

  it("refuses a dirty checkout and a release with nothing new, in prepare", function()
    local w = world()
    assert(fs.write(w.s.dir .. "/app/README", "local edit\n"))
    local r = w.run({ RECIPE, "1" })
    assert.are.equal(1, r.code)
    assert.matches("Working tree is dirty", r.stderr)
    assert.matches("release failed in phase prepare", r.stderr)
    assert(fs.write(w.s.dir .. "/app/README", "v1\n"))
    r = w.run({ RECIPE, "2" })
    assert.are.equal(1, r.code)
    assert.matches("already up%-to%-date with origin/" .. w.branch .. ": nothing to release", r.stderr)
  end)

  it("in a dry run fetches nothing and leaves the checkout alone", function()
    local w = world()
    local base = w.head()
    w.push({ ["x"] = "y\n" })
    local r = w.run({ RECIPE, "5", "--dry-run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("%[dry%-run%] would fetch origin", r.stdout)
    assert.are.equal(base, w.head())
    assert.is_false(w.s:exists("home"))
  end)

  -- A ticket script in bash ([[ ]]), failing while target/NAME-broken exists.
  local function script(name)
    return "#!/bin/bash\nif [[ -f ../target/" .. name .. "-broken ]]; then\n  echo '" .. name .. ": calling the API'\n"
      .. "  echo '" .. name .. ": stale env var API_URL' >&2\n  exit 7\nfi\necho " .. name .. " >> ../target/ticket\n"
  end

  it("runs the ticket's shell scripts and Lua files in name order; a failing script halts with its exit code and output", function()
    local w = world()
    w.fault("d-broken")
    local base = w.head()
    local target = w.release({
      ["releases/77-a.sh"] = "#!/bin/sh\necho \"a $RELUA_TICKET $BASE_SHA $MERGE_SHA $BACKUP\" >> ../target/ticket\n",
      ["releases/77-b.lua"] = "local r = ... local f = assert(io.open('../target/ticket', 'a')) f:write('b ', r.phase, '\\n') f:close()",
      ["releases/77-c.sh"] = "echo c >> ../target/ticket\n",  -- no #! line, not executable: /bin/sh
      ["releases/77-d.sh"] = script("d"),
      ["releases/7-x.sh"] = "echo wrong >> ../target/ticket\n",
      ["releases/177-x.sh"] = "echo wrong >> ../target/ticket\n",
      ["releases/77-notes.txt"] = "not a script\n",
    })
    local r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("phase ticket failed: command exited with 7: /bin/bash releases/77-d.sh", r.stderr, 1, true)
    assert.matches("d: stale env var API_URL", r.stdout .. r.stderr, 1, true)
    assert.are.same({ "a 77 " .. base .. " " .. target .. " db-77.tar", "b ticket", "c" }, w.count("ticket"))
    local st = json.decode(w.run({ "status", "77", "--json" }).stdout)
    assert.are.equal("failed", st.status)
    local failure = st.phases[3].failure
    assert.are.equal("ticket", st.phases[3].name)
    assert.are.equal(7, failure.rc)
    assert.matches("d: stale env var API_URL", failure.tail, 1, true)
    assert.matches("d: calling the API", failure.tail, 1, true)
    -- fixed: the re-run runs the failed script; the scripts that passed are not run again
    w.clear("d-broken")
    r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("step script releases/77-a.sh: done earlier", r.stdout, 1, true)
    assert.are.same({ "a 77 " .. base .. " " .. target .. " db-77.tar", "b ticket", "c", "b ticket", "d" }, w.count("ticket"))
    assert.are.same({ target }, w.count("migrations"))
    assert.are.same({ "db-77.tar" }, w.count("backups"))
  end)

  it("a Lua file whose name holds a glob character is refused, not skipped", function()
    local w = world()
    w.release({ ["releases/77-[x].lua"] = "local f = assert(io.open('../target/ticket', 'a')) f:write('x\\n') f:close()" })
    local r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("phase ticket failed: ticket: releases/77-[x].lua: a name with [ ] * or ? cannot be included", r.stderr, 1, true)
    assert.matches("rename it", r.stderr, 1, true)
    assert.are.same({}, w.count("ticket"))
  end)

  it("a dry run says which scripts it would run and runs none", function()
    local w = world()
    w.fault("a-broken")
    w.release({ ["releases/77-a.sh"] = script("a") })
    assert.are.equal(1, w.run({ RECIPE, "77" }, w.env).code)
    w.clear("a-broken")
    local r = w.run({ RECIPE, "77", "--dry-run" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("[dry-run] would run step script releases/77-a.sh", r.stdout, 1, true)
    assert.are.same({}, w.count("ticket"))
  end)

  -- Each phase's fault, and where it shows.
  local FAULTS = {
    { phase = "prepare", file = "backup-broken", says = "pg_dump: connection refused" },
    { phase = "migrate", file = "migrate-broken", says = "command exited with 4: ./migrate.sh" },
    { phase = "ticket", file = "a-broken", says = "command exited with 7: /bin/bash releases/77-a.sh" },
    { phase = "verify", file = "unhealthy", says = "wikijs.healthy: unhealthy" },
  }
  for _, f in ipairs(FAULTS) do
    it("a failure in " .. f.phase .. ", fixed: the re-run completes, nothing deployed twice", function()
      local w = world()
      w.fault(f.file)
      local target = w.release({ ["releases/77-a.sh"] = script("a") })
      local r = w.run({ RECIPE, "77" }, w.env)
      assert.are.equal(1, r.code, r.stdout .. r.stderr)
      assert.matches("phase " .. f.phase .. " failed", r.stderr, 1, true)
      assert.matches(f.says, r.stdout .. r.stderr, 1, true)
      assert.are.equal("failed", w.s:statuses("77")[f.phase])
      w.clear(f.file)
      r = w.run({ RECIPE, "77" }, w.env)
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      assert.matches("release 77 done: all 4 phases done", r.stdout, 1, true)
      assert.are.equal(target, w.head())
      assert.are.same({ "db-77.tar" }, w.count("backups"))
      assert.are.same({ target }, w.count("migrations"))
      assert.are.same({ "a" }, w.count("ticket"))
      assert.are.same({}, w.count("restores"))
      assert.matches("nothing to do", w.run({ RECIPE, "77" }, w.env).stdout, 1, true)
    end)
  end

  it("--from after a fixed cause: re-runs from there on, with the recorded BASE_SHA and MERGE_SHA", function()
    local w = world()
    local base = w.head()
    w.fault("unhealthy")
    local target = w.release({ ["releases/77-a.sh"] = script("a") })
    local r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("Resume: relua " .. RECIPE .. " 77 --from=verify", r.stderr, 1, true)
    w.clear("unhealthy")
    r = w.run({ RECIPE, "77", "--from=verify" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ target }, w.count("migrations"))
    -- --from=ticket after the release: the scripts that ran are recorded, none runs again
    r = w.run({ RECIPE, "77", "--from=ticket" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.same({ "a" }, w.count("ticket"))
    local st = w.s:state("77")
    assert.are.equal(base, st.state.BASE_SHA)
    assert.are.equal(target, st.state.MERGE_SHA)
  end)

  it("revert after a failure restores the backup and resets the checkout (no point of no return)", function()
    local w = world()
    local base = w.head()
    w.fault("migrate-broken")
    w.release()
    assert.are.equal(1, w.run({ RECIPE, "77" }, w.env).code)
    local r = w.run({ "revert", "77" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("ticket 77 reverted", r.stdout, 1, true)
    assert.are.same({ "db-77.tar" }, w.count("restores"))
    assert.are.equal(base, w.head())
    assert.are.same({}, w.count("migrations"))
  end)

  it("verify: a health probe that raced the restart passes on the bounded retry", function()
    local w = world()
    w.fault("starting", "2\n")
    w.release()
    local r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("exit 1 on try 1 of 3; next try in 0.05s", r.stdout, 1, true)
    assert.matches("passed on try 3 of 3", r.stdout, 1, true)
    -- a service that stays down fails verify once the tries are spent
    local w2 = world()
    w2.fault("starting", "9\n")
    w2.release()
    r = w2.run({ RECIPE, "77", }, { RELEASE_VERIFY_TRIES = "2" })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("exit 1 on try 1 of 2", r.stdout, 1, true)
    assert.matches("phase verify failed: command exited with 1: ./verify.sh", r.stderr, 1, true)
    assert.are.same({ "7" }, w2.count("starting"))
  end)

  it("a pre-pull (BASE_SHA == MERGE_SHA) is detected and explained; reset as told, the re-run releases", function()
    local w = world()
    local base = w.head()
    local target = w.release()
    -- someone pulls on the server before the release
    local app = assert(git.open(w.s.dir .. "/app"))
    assert(app:fetch("origin", nil, { username = srv.user, password = srv.password }))
    assert(app:reset(target, "hard"))
    local r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("already up-to-date with origin/main: nothing to release", r.stderr, 1, true)
    assert.matches("BASE_SHA = MERGE_SHA = " .. target, r.stderr, 1, true)
    assert.matches("git reflog", r.stderr, 1, true)
    assert.are.same({}, w.count("backups"))
    -- the operator resets to the pre-pull commit, as the message says, and runs again
    assert(app:reset(base, "hard"))
    app:close()
    r = w.run({ RECIPE, "77" }, w.env)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    local st = w.s:state("77")
    assert.are.equal(base, st.state.BASE_SHA)
    assert.are.equal(target, st.state.MERGE_SHA)
    assert.are.same({ target }, w.count("migrations"))
  end)

  it("a checkout with no commit is refused in prepare with what to do", function()
    local s = S.sandbox()
    repos = repos + 1
    local name = "empty" .. repos .. ".git"
    srv:bare(name)
    local a = assert(git.clone(srv:url(name), s.dir .. "/app", { username = srv.user, password = srv.password }))
    a:close()
    local r = h.sh(h.quote(S.bin()) .. " " .. h.quote(RECIPE) .. " 1", { cwd = s.dir .. "/app",
      env = { RELUA_HOME = s.dir .. "/home", RELUA_STORE = s.store_url or false, RELUA_PLAYBOOKS = false,
              RELUA_GIT_USERNAME = srv.user, RELUA_GIT_PASSWORD = srv.password } })
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("phase prepare failed: the checkout has no commit yet (HEAD is unborn)", r.stderr, 1, true)
    assert.matches("run the release in the deployed checkout", r.stderr, 1, true)
  end)
end)
