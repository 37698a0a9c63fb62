-- The world of recipes/pypi-npm.lua for the specs (and anyone who wants to watch it run):
-- real servers on 127.0.0.1 (git over smart HTTP by lighttpd, verdaccio, the PyPI test
-- index, the GitHub-API test forge), started once, and per scenario a new project: a
-- bare repository on the git server with a Python package (flit, built for real by
-- `python3 -m build`) and an npm package, released v1.0.0 and back at 1.0.0+dev, cloned
-- into a checkout where the recipe runs. Project names are unique per project, so the
-- registries' files of one scenario never meet another's.
--
--   local W = require "support.pypinpm"
--   local servers = W.servers()            -- in setup(); servers.stop() in teardown()
--   local p = W.project(servers)           -- p.dir (the checkout), p.env, p.run(args, env)
--   p.run({ "42" })                         -- relua recipes/pypi-npm.lua 42 in p.dir
local reg = require "support.registries"
local githttp = require "support.githttp"
local gitfix = require "support.gitfix"
local h = require "support.h"
local fs = require "relua.fs"
local json = require "relua.json"

local M = {}

M.RECIPE = h.root .. "/recipes/pypi-npm.lua"
-- The Python of the system (where python3-build and flit live; a pyenv first on PATH may
-- not have them).
M.PYTHON = fs.exists("/usr/bin/python3") and "/usr/bin/python3" or "python3"

--- Starts the four servers (opts.npm = false: no verdaccio). Returns {git=, pypi=, npm=,
--- forge=, stop()}.
function M.servers(opts)
  local s = {}
  local ok, e = pcall(function()
    s.git = githttp.start({ user = "relua", password = "s3cret-git" })
    s.pypi = reg.pypi()
    if not (opts and opts.npm == false) then s.npm = reg.verdaccio() end
    s.forge = reg.forge()
  end)
  function s.stop()
    for _, k in ipairs({ "git", "pypi", "npm", "forge" }) do
      if s[k] then
        if k == "git" then s[k]:stop() else s[k].stop() end
        s[k] = nil
      end
    end
    gitfix.cleanup()
  end
  if not ok then s.stop(); error(e, 0) end
  return s
end

local n = 0

local function pyproject(name, version)
  return table.concat({
    "[build-system]",
    'requires = ["flit_core >=3.2,<4"]',
    'build-backend = "flit_core.buildapi"',
    "",
    "[project]",
    'name = "' .. name .. '"',
    'version = "' .. version .. '"',
    'description = "A package released by relua\'s pypi-npm recipe"',
    "",
  }, "\n")
end

local function package_json(name, version)
  return json.encode({ name = name, version = version, description = "released by relua's pypi-npm recipe",
                       main = "index.js", license = "MIT" }) .. "\n"
end

--- A new project on the servers (opts.name: the name its packages start with, default a
--- unique one; opts.env: more settings): returns a table with dir (the checkout), env (the
--- recipe's environment), names, and helpers:
---   p.run(args [, env])        relua ARGS in the checkout -> {code=, stdout=, stderr=}
---   p.release(ticket [, env])  p.run({RECIPE, ticket})
---   p.commit(message, file, content)  a commit pushed to main (by "someone else")
---   p.ci(state [, sha])        sets the forge's CI status of sha (default: main's head)
---   p.head()                   main's head on the server
---   p.remote_tags()            the tags on the server, sorted
---   p.main_version()           pyproject.toml's version on the server's main
---   p.counts()                 {npm = uploads, pypi = uploads, forge = uploads} so far
---   p.npm_versions()           versions of the npm package on verdaccio
---   p.pypi_files()             the project's files on the PyPI index
function M.project(s, opts)
  opts = opts or {}
  n = n + 1
  local stamp = tostring(os.time()) .. tostring(n)
  local p = { n = n }
  local base = opts.name or ("relua-pn" .. stamp)  -- opts.name: readable names (unique per servers!)
  p.py_name = base .. "-pkg"
  p.py_module = p.py_name:gsub("-", "_")
  p.npm_name = base .. "-js"
  p.npm_name2 = base .. "-widgets"
  p.repo = "acme/" .. base
  local bare_name = "pn" .. n .. ".git"
  s.git:bare(bare_name)
  local authed = string.format("http://%s:%s@127.0.0.1:%d/git/%s", s.git.user, s.git.password, s.git.port, bare_name)
  local seed = gitfix.tmpdir() .. "/seed"
  gitfix.repo(seed, { commit = false })
  gitfix.write(seed, ".gitignore", "dist/\n__pycache__/\n")
  gitfix.write(seed, "pyproject.toml", pyproject(p.py_name, "1.0.0"))
  gitfix.write(seed, "src/" .. p.py_module .. "/__init__.py", '"""The package."""\nVALUE = 1\n')
  gitfix.write(seed, "js/package.json", package_json(p.npm_name, "1.0.0"))
  gitfix.write(seed, "js/index.js", "module.exports = 1;\n")
  gitfix.write(seed, "widgets/package.json", package_json(p.npm_name2, "1.0.0"))
  gitfix.write(seed, "widgets/index.js", "module.exports = 'widgets';\n")
  gitfix.git(seed, "add", "-A")
  gitfix.git(seed, "commit", "-q", "-m", "feat: the first release")
  gitfix.git(seed, "tag", "-a", "v1.0.0", "-m", "Release 1.0.0")
  gitfix.write(seed, "pyproject.toml", pyproject(p.py_name, "1.0.0+dev"))
  gitfix.write(seed, "js/package.json", package_json(p.npm_name, "1.0.0+dev"))
  gitfix.write(seed, "widgets/package.json", package_json(p.npm_name2, "1.0.0+dev"))
  gitfix.git(seed, "commit", "-q", "-am", "chore: back to development (1.0.0+dev)")
  gitfix.commit(seed, "fix: a bug fixed after 1.0.0", "src/" .. p.py_module .. "/fix.py", "FIXED = True\n")
  gitfix.git(seed, "push", "-q", authed, "main", "v1.0.0")
  p.url = s.git:url(bare_name)
  p.bare = s.git:repo_path(bare_name)
  p.authed = authed
  local work = gitfix.tmpdir() .. "/work"
  gitfix.git("/", "clone", "-q", authed, work)
  gitfix.git(work, "remote", "set-url", "origin", p.url)
  gitfix.git(work, "config", "user.name", "Release Bot")
  gitfix.git(work, "config", "user.email", "release@example.test")
  p.dir = work
  p.home = gitfix.tmpdir() .. "/relua-home"
  p.env = {
    RELUA_HOME = p.home, RELUA_STORE = false, RELUA_PLAYBOOKS = false, RELUA_TEST_CRASH_AT = false,
    RELUA_GIT_USERNAME = s.git.user, RELUA_GIT_PASSWORD = s.git.password, RELUA_GIT_TOKEN = false,
    GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_GLOBAL = "/dev/null",
    PYPI_NPM_NPM_DIRS = "js widgets",
    PYPI_NPM_BUILD_PYTHON = M.PYTHON .. ' -m build --no-isolation --sdist --wheel --outdir "$PYPI_NPM_DIST_PYPI" .',
    PYPI_NPM_PYPI_URL = s.pypi.legacy, PYPI_NPM_PYPI_USER = s.pypi.user, PYPI_API_TOKEN = s.pypi.password,
    PYPI_NPM_NPM_REGISTRY = s.npm and s.npm.url, NPM_TOKEN = s.npm and s.npm.token,
    PYPI_NPM_FORGE_API = s.forge.api, PYPI_NPM_FORGE_REPO = p.repo, GITHUB_TOKEN = s.forge.token,
    GITHUB_STEP_SUMMARY = false, GITHUB_ACTIONS = false, GITHUB_REPOSITORY = false, GITHUB_API_URL = false,
    npm_config_update_notifier = "false", npm_config_fund = "false", npm_config_audit = "false",
  }
  for k, v in pairs(opts.env or {}) do p.env[k] = v end

  function p.run(args, extra)
    local e = {}
    for k, v in pairs(p.env) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v end
    return h.relua(args, { cwd = p.dir, env = e })
  end
  function p.release(ticket, extra) return p.run({ M.RECIPE, ticket }, extra) end
  function p.head()
    local out = gitfix.git("/", "ls-remote", authed, "refs/heads/main")
    return out:match("^(%x+)")
  end
  function p.remote_tags()
    local t = {}
    for name in gitfix.git("/", "ls-remote", "--tags", authed):gmatch("refs/tags/([^%s^]+)\n?") do
      if not name:find("%^{}$") then t[#t + 1] = name end
    end
    local seen, out = {}, {}
    for _, name in ipairs(t) do
      if not seen[name] then seen[name] = true; out[#out + 1] = name end
    end
    table.sort(out)
    return out
  end
  function p.ci(state, sha)
    sha = sha or p.head()
    s.forge.setup({ repo = p.repo, statuses = { [sha] = { { state = state, context = "ci/test" } } } })
  end
  -- a commit to main on the server, as a teammate pushing
  function p.commit(message, file, content)
    local other = gitfix.tmpdir() .. "/other"
    gitfix.git("/", "clone", "-q", authed, other)
    local sha = gitfix.commit(other, message, file, content)
    gitfix.git(other, "push", "-q", "origin", "main")
    fs.remove(other, { recursive = true })
    return sha
  end
  function p.main_version()
    local other = gitfix.tmpdir() .. "/peek"
    gitfix.git("/", "clone", "-q", "--depth", "1", authed, other)
    local v = require("relua.versionfile").get(other .. "/pyproject.toml")
    fs.remove(other, { recursive = true })
    return v
  end
  -- the versions of an npm package on verdaccio (default: the js one)
  function p.npm_versions(name)
    local http = require "relua.http"
    local resp = http.get(s.npm.url .. (name or p.npm_name), { retry = false, progress = false })
    if not resp or resp.status ~= 200 then return {} end
    local doc = json.decode(resp.body)
    local out = {}
    for v in pairs(doc.versions or {}) do out[#out + 1] = v end
    table.sort(out)
    return out
  end
  function p.pypi_files()
    local out = {}
    local prefix = p.py_module:lower()
    for _, f in ipairs(s.pypi.files()) do
      if f:lower():gsub("-", "_"):sub(1, #prefix) == prefix then out[#out + 1] = f end
    end
    table.sort(out)
    return out
  end
  -- what the servers have seen so far (compare before and after a run): npm publishes of
  -- this project's packages, uploads to the PyPI index and to the forge (all projects)
  function p.counts()
    return { npm = s.npm and (s.npm.publishes(p.npm_name) + s.npm.publishes(p.npm_name2)) or 0, pypi = s.pypi.uploads(),
             forge = s.forge.stats().uploads }
  end
  -- the server refuses pushes to refs matching the shell pattern (a branch protection, a
  -- declining hook) until p.unprotect()
  function p.protect(pattern)
    local hook = p.bare .. "/hooks/pre-receive"
    assert(fs.write(hook, table.concat({
      "#!/bin/sh",
      "while read old new ref; do",
      '  case "$ref" in ' .. pattern .. ') if [ -e "$GIT_DIR/protected" ]; then',
      '    echo "protected: $ref may not be pushed" >&2; exit 1; fi ;; esac',
      "done", "" }, "\n")))
    assert(os.execute("chmod +x " .. h.quote(hook)))
    assert(fs.write(p.bare .. "/protected", "1\n"))
  end
  function p.unprotect() fs.remove(p.bare .. "/protected") end
  -- the ticket's state values, as recorded
  function p.state(ticket)
    return json.decode(h.slurp(p.home .. "/releases/" .. ticket .. ".json")).state
  end
  -- the commit a tag on the server points at
  function p.tag_commit(tag)
    local out = gitfix.git("/", "ls-remote", "--tags", authed)
    return out:match("(%x+)%s+refs/tags/" .. tag:gsub("%p", "%%%0") .. "%^{}") or out:match("(%x+)%s+refs/tags/" .. tag:gsub("%p", "%%%0") .. "\n")
  end
  p.ci("success")
  return p
end

-- What the recipe specs assert of the command line, for any project p of M.project.
local assert = require "luassert"

--- The run exited 0 / 1 (the output shown when not).
function M.ok(r) assert.are.equal(0, r.code, r.stdout .. r.stderr) end
function M.failed(r) assert.are.equal(1, r.code, r.stdout .. r.stderr) end

--- relua status TICKET --json, decoded.
function M.status(p, ticket)
  local r = p.run({ "status", ticket, "--json" })
  M.ok(r)
  return json.decode(r.stdout)
end

--- The ticket's phases: {name = status}.
function M.phases(p, ticket)
  local t = {}
  for _, ph in ipairs(M.status(p, ticket).phases) do t[ph.name] = ph.status end
  return t
end

--- relua diagnose names the playbook first, confirmed; returns what it printed.
function M.diagnosed(p, ticket, id, env)
  local diag = p.run({ "diagnose", ticket }, env)
  M.ok(diag)
  assert.matches("1. " .. id .. " [confirmed]", diag.stdout, 1, true)
  return diag.stdout
end

--- relua recover --yes applies the playbook, verifies and completes the release.
function M.recovered(p, ticket, id)
  local rec = p.run({ "recover", ticket, "--yes" })
  M.ok(rec)
  assert.matches("playbook " .. id .. ": verified", rec.stdout, 1, true)
  assert.matches("release " .. ticket .. " done", rec.stdout, 1, true)
  return rec
end

return M
