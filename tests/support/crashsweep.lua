-- The crash sweep (issue 9): a real release (steps, state writes, processes, a git tag
-- pushed over smart HTTP, a PyPI and an npm publish to the test servers) killed with
-- SIGKILL at each durable write, network call and fork that relua itself makes, found by
-- tracing one whole run with strace, then injected one at a time with
-- `strace -e inject=SYSCALL:signal=KILL:when=N`. After each kill, plain re-runs (no other
-- step) until the release is done. At every point: the state parses, the log has no torn
-- line, each artifact is on its registry exactly once with the right digest, the tag
-- exactly once at the right commit, and the final status is done.
--
--   local sweep = require "support.crashsweep"
--   local env = sweep.setup(npoints)         -- servers and artifacts for npoints points
--   local points = sweep.points(env)         -- {{syscall=, n=}, ...} from one traced run
--   local res = sweep.run_point(env, i, pt)  -- {ok=, resumed=, reruns=, why=}
--   env:stop()
local h = require "support.h"
local fs = require "relua.fs"
local json = require "relua.json"
local githttp = require "support.githttp"
local registries = require "support.registries"

local M = {}

--- The syscalls that are relua's durable writes, network calls and forks. Traced in the
--- relua process only (no -f): a kill inside a child is the child's failure, not relua's.
M.SYSCALLS = { "write", "pwrite64", "fsync", "fdatasync", "rename", "renameat", "renameat2",
  "link", "unlink", "ftruncate", "mkdir", "connect", "sendto", "sendmsg", "vfork", "clone",
  "clone3" }

-- The release: every kind of effect relua makes, parameterised by the environment.
local RECIPE = [[
local git = require "relua.git"
local pypi = require "relua.registry.pypi"
local npm = require "relua.registry.npm"
local E = os.getenv
return { name = "crash", phases = {
  { name = "prepare", run = function(r)
      r.state.VERSION = E("CRASH_VERSION")
      r:step("build", function()
        r:sh("echo built >> built.txt")
        return { built = true }
      end)
    end },
  { name = "tag", run = function(r)
      local repo <close> = assert(git.open("work"))
      assert(repo:tag("v" .. r.state.VERSION))
      assert(repo:push(E("CRASH_GIT"), { "v" .. r.state.VERSION }))
      r.state.TAGGED = true
    end },
  { name = "pypi", run = function(r)
      r.state.PYPI = pypi.publish(E("CRASH_WHEEL"), { url = E("CRASH_PYPI"), timeout = 30 }).sha256
    end },
  { name = "npm", run = function(r)
      r.state.NPM = npm.publish(E("CRASH_TGZ"), { registry = E("CRASH_NPM"), timeout = 30 }).shasum
    end },
  { name = "finish", run = function(r)
      r:step("announce", function() r:sh("echo announced >> announce.txt") end)
      r.state.DONE = true
    end },
} }
]]

local LOG_LINE = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ ticket=T [^\n]*event=%S+[^\n]*$"

local function sh(cmd, opts)
  local r = h.sh(cmd, opts)
  assert(r.code == 0, cmd .. ": " .. r.stderr)
  return r.stdout
end

local function sha(path, algo)
  return (sh((algo == "sha1" and "sha1sum " or "sha256sum ") .. h.quote(path)):match("^%x+"))
end

--- Starts the servers and builds one wheel and one npm tarball per point (versions
--- 1.0.1 .. 1.0.N of one project each), and a git repository to tag.
function M.setup(npoints)
  local env = { dir = assert(fs.tmpdir("relua-crash")) }
  local ok, err = pcall(function()
    env.git = githttp.start()
    env.pypi = registries.pypi({ timeout = 30 })
    env.npm = registries.verdaccio({ timeout = 60 })
    local pairs_, specs = {}, {}
    for i = 1, npoints + 1 do          -- the last one is for the traced run
      pairs_[#pairs_ + 1] = "relua-crash"
      pairs_[#pairs_ + 1] = "1.0." .. i
      specs[i] = { manifest = { name = "relua-crash", version = "1.0." .. i } }
    end
    env.wheels = registries.build_dists(env.dir .. "/dist", pairs_)
    env.tgzs = registries.npm_pack(env.dir .. "/npm", specs)
    sh("git init -q -b main work && git -C work -c user.name=a -c user.email=a@b "
      .. "commit -q --allow-empty -m one", { cwd = env.dir })
    env.head = sh("git -C work rev-parse HEAD", { cwd = env.dir }):match("%x+")
  end)
  function env.stop()
    for _, s in ipairs({ "git", "pypi", "npm" }) do
      if env[s] then pcall(function() env[s]:stop() end) end
    end
    fs.remove(env.dir, { recursive = true })
  end
  if not ok then
    env.stop()
    error(err, 0)
  end
  return env
end

-- A fresh sandbox for point i: the work repository copied, a new bare remote, the recipe.
local function sandbox(env, i)
  local d = env.dir .. "/p" .. i
  sh("rm -rf " .. h.quote(d) .. " && mkdir -p " .. h.quote(d) .. " && cp -a " .. h.quote(env.dir .. "/work")
    .. " " .. h.quote(d .. "/work"))
  env.git:bare("p" .. i .. ".git")
  h.spit(d .. "/release.lua", RECIPE)
  return d
end

local function run_env(env, i)
  return {
    RELUA_HOME = false, RELUA_TEST_CRASH_AT = false,
    CRASH_VERSION = "1.0." .. i,
    CRASH_GIT = env.git:url("p" .. i .. ".git"),
    CRASH_WHEEL = env.wheels[i], CRASH_TGZ = env.tgzs[i],
    CRASH_PYPI = env.pypi.legacy, CRASH_NPM = env.npm.url,
    RELUA_GIT_USERNAME = env.git.user, RELUA_GIT_PASSWORD = env.git.password,
    TWINE_USERNAME = env.pypi.user, PYPI_TOKEN = env.pypi.password, NPM_TOKEN = env.npm.token,
  }
end

local function relua_cmd(prefix)
  local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
  -- "; exit $?": the shell's own "Killed" notice goes to the captured stderr
  return prefix .. h.quote(bin) .. " release.lua T >>out.txt 2>&1; exit $?"
end

--- The points: one run traced whole (relua's own process), its calls counted by name.
function M.points(env)
  local i = #env.wheels
  local d = sandbox(env, i)
  local trace = d .. "/trace.txt"
  local r = h.sh(relua_cmd("strace -qq -o " .. h.quote(trace) .. " -e trace=" .. table.concat(M.SYSCALLS, ",") .. " "),
    { cwd = d, env = run_env(env, i) })
  assert(r.code == 0, "the traced run failed: " .. (h.slurp(d .. "/out.txt") or ""))
  local counts, points = {}, {}
  for line in io.lines(trace) do
    local name = line:match("^([%w_]+)%(")
    if name then
      counts[name] = (counts[name] or 0) + 1
      points[#points + 1] = { syscall = name, n = counts[name] }
    end
  end
  return points, counts
end

-- What a point left must hold; returns nil or what is wrong.
local function check_ledger(d)
  local log = h.slurp(d .. "/.relua/releases/T.log") or ""
  if log ~= "" then
    if log:sub(-1) ~= "\n" then return "the log ends with a torn line" end
    for line in log:gmatch("([^\n]*)\n") do
      if not line:match(LOG_LINE) then return "a torn log line: " .. line end
    end
  end
  local text = h.slurp(d .. "/.relua/releases/T.json")   -- "" when absent
  if fs.exists(d .. "/.relua/releases/T.json") then
    local st, err = json.decode(text, "T.json")
    if not st then return "the state does not parse: " .. err end
    return nil, st
  end
end

local function check_world(env, i, d)
  local v = "1.0." .. i
  -- the tag: exactly once, at the commit
  local refs = sh("git ls-remote " .. h.quote(env.git:repo_path("p" .. i .. ".git")))
  local tags = {}
  for id, ref in refs:gmatch("(%x+)%s+(refs/tags/%S+)") do tags[#tags + 1] = { id = id, ref = ref } end
  if #tags ~= 1 or tags[1].ref ~= "refs/tags/v" .. v or tags[1].id ~= env.head then
    return "the remote's tags are " .. refs:gsub("\n", "; ")
  end
  -- the wheel: exactly one file of that version on the index, with the digest
  local name = fs.basename(env.wheels[i])
  local n = 0
  for _, f in ipairs(env.pypi.files()) do if f == name then n = n + 1 end end
  if n ~= 1 then return "the index holds " .. n .. " copies of " .. name end
  local stored = sha(env.pypi.storage .. "/files/" .. name)
  if stored ~= sha(env.wheels[i]) then return "the index's " .. name .. " has another digest" end
  -- the npm version: once, with the tarball's sha1
  local resp = require("relua.http").get(env.npm.url .. "relua-crash", { retry = false, progress = false })
  local doc = resp and resp.status == 200 and json.decode(resp.body)
  local dist = doc and doc.versions and doc.versions[v] and doc.versions[v].dist
  if not dist or dist.shasum ~= sha(env.tgzs[i], "sha1") then return "npm does not hold " .. v .. " with its shasum" end
  if (h.slurp(d .. "/built.txt") or "") == "" then return "the build step never ran" end
  return nil
end

--- Kills relua at point pt (the pt.n-th call of pt.syscall), then re-runs plainly (at
--- most 3 times) until the release is done. {ok=, resumed=, reruns=, killed=, why=}
function M.run_point(env, i, pt)
  local d = sandbox(env, i)
  local renv = run_env(env, i)
  local r = h.sh(relua_cmd(string.format("strace -qq -o /dev/null -e trace=%s -e inject=%s:signal=KILL:when=%d ",
    pt.syscall, pt.syscall, pt.n)), { cwd = d, env = renv })
  local res = { killed = r.code == 137, reruns = 0 }
  local why = check_ledger(d)
  if why then res.why = why return res end
  local done = r.code == 0
  while not done and res.reruns < 3 do
    res.reruns = res.reruns + 1
    r = h.sh(relua_cmd(""), { cwd = d, env = renv })
    why = check_ledger(d)
    if why then res.why = why return res end
    done = r.code == 0
  end
  if not done then
    res.why = "not done after 3 plain re-runs:\n" .. (h.slurp(d .. "/out.txt") or "")
    return res
  end
  local _, st = check_ledger(d)
  for _, p in ipairs(st.phases) do
    if p.status ~= "done" then res.why = "phase " .. p.name .. " is " .. p.status return res end
  end
  why = check_world(env, i, d)
  if why then res.why = why return res end
  res.ok, res.resumed = true, true
  sh("rm -rf " .. h.quote(d))
  return res
end

return M
