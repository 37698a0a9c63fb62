-- recipes/pypi-npm.lua: release a project that ships a Python package to PyPI and npm
-- packages to an npm registry, with a forge (GitHub) release, as the release-recovery
-- runbook of seed 000 describes. The TICKET names the release run (a CI run id, an issue):
-- a retry of the same ticket releases the version it recorded; a new ticket cuts the next
-- version from the last tag.
--
--   relua recipes/pypi-npm.lua 42                 release (or resume) ticket 42
--   relua recipes/pypi-npm.lua 42 --from=build    rebuild and publish what is missing
--   relua status 42 / relua log 42                where it stands / the audit log
--   relua diagnose 42 / relua recover 42          the playbooks (playbooks/pypi-npm-*)
--   relua revert 42                               before anything is published: delete the tag
--
-- Phases: gate (CI green for the commit) -> prepare (version, release commit, tag pushed)
-- -> build (wheel + sdist, npm tarballs) -> npm-publish -> pypi-publish -> forge-release
-- -> finalize (the version files to X.Y.Z+dev, pushed to the branch). npm is published
-- before PyPI (npm has no skip-existing, PyPI files are immutable); the builds gate every
-- publish; the forge release is gated on both; finalize is a follow-up past the point of
-- no return. Every publish goes through relua.publish: a re-run only fills gaps, an
-- identical artifact is `skipped_existing`, other bytes for the version is `immutable`
-- ("bump the version"): nothing is ever sent twice.
--
-- A pre-flight checks every setting below, the three tokens and the version files before
-- the first phase runs: a bad one is refused with exit 2 and nothing is done.
--
-- Run it in a clean checkout of the project. Settings come from the environment
-- (this interface is stable; defaults in brackets):
--   PYPI_NPM_REMOTE           the git remote [origin]; HTTP credentials: RELUA_GIT_USERNAME
--                             + RELUA_GIT_PASSWORD, or RELUA_GIT_TOKEN (relua.git)
--   PYPI_NPM_BRANCH           the branch released and moved to X.Y.Z+dev [main]
--   PYPI_NPM_BUMP             patch | minor | major | auto (Conventional Commits) [patch]
--   PYPI_NPM_VERSION          release exactly this version (retry a version from a runner
--                             that has no ledger for it: its tag is reused) [computed]
--   PYPI_NPM_TAG_PREFIX       [v]
--   PYPI_NPM_INITIAL          the first version when there is no tag yet [0.1.0]
--   PYPI_NPM_DEV_SUFFIX       what finalize appends to the version [+dev]
--   PYPI_NPM_PYTHON_DIR       the folder holding pyproject.toml [.]
--   PYPI_NPM_NPM_DIRS         the npm package folders, space-separated [.]
--   PYPI_NPM_VERSION_FILES    more files holding the version (e.g. src/pkg/__init__.py) []
--   PYPI_NPM_DIST             where the builds go: DIST/pypi and DIST/npm [dist]
--   PYPI_NPM_BUILD_PYTHON     run in PYTHON_DIR, must write the wheel and sdist into
--                             $PYPI_NPM_DIST_PYPI [python3 -m build --sdist --wheel --outdir "$PYPI_NPM_DIST_PYPI" .]
--   PYPI_NPM_BUILD_NPM        run in each npm folder, must write its tarball into
--                             $PYPI_NPM_DIST_NPM [npm pack --pack-destination "$PYPI_NPM_DIST_NPM"]
--                             Both get SOURCE_DATE_EPOCH (the release commit's time), so a
--                             rebuild of the same tag is byte-identical.
--   PYPI_NPM_PYPI_URL         the PyPI upload URL [https://upload.pypi.org/legacy/]
--   PYPI_NPM_PYPI_USER        [__token__]
--   PYPI_NPM_PYPI_TOKEN_FROM  the variable holding the PyPI token [PYPI_API_TOKEN]
--   PYPI_NPM_NPM_REGISTRY     [https://registry.npmjs.org/]
--   PYPI_NPM_NPM_TOKEN_FROM   the variable holding the npm token [NPM_TOKEN]
--   PYPI_NPM_NPM_ACCESS       public | restricted (scoped packages) [registry default]
--   PYPI_NPM_FORGE_API        [$GITHUB_API_URL, else https://api.github.com]
--   PYPI_NPM_FORGE_REPO       owner/name [$GITHUB_REPOSITORY]
--   PYPI_NPM_FORGE_TOKEN_FROM the variable holding the forge token [GITHUB_TOKEN]
--   PYPI_NPM_FORGE_ASSETS     0: no release assets (the builds are attached by default) [1]
--   PYPI_NPM_SKIP_CI          1: the gate does not ask the forge (the seed's skip_ci_check) [0]
-- State values (r.state): BASE_SHA (the commit released), VERSION, TAG, RELEASE_SHA (the
-- tagged release commit), DEV_SHA (finalize's commit), publish (per target and artifact).
local git = require "relua.git"
local errors = require "relua.error"
local fs = require "relua.fs"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function words(s)
  local t = {}
  for w in (s or ""):gmatch("%S+") do t[#t + 1] = w end
  return t
end

local CFG = {
  remote = env("PYPI_NPM_REMOTE", "origin"),
  branch = env("PYPI_NPM_BRANCH", "main"),
  bump = env("PYPI_NPM_BUMP", "patch"),
  version = env("PYPI_NPM_VERSION"),
  prefix = env("PYPI_NPM_TAG_PREFIX", "v"),
  initial = env("PYPI_NPM_INITIAL", "0.1.0"),
  dev_suffix = env("PYPI_NPM_DEV_SUFFIX", "+dev"),
  python_dir = env("PYPI_NPM_PYTHON_DIR", "."),
  npm_dirs = words(env("PYPI_NPM_NPM_DIRS", ".")),
  version_files = words(env("PYPI_NPM_VERSION_FILES", "")),
  dist = env("PYPI_NPM_DIST", "dist"),
  build_python = env("PYPI_NPM_BUILD_PYTHON", 'python3 -m build --sdist --wheel --outdir "$PYPI_NPM_DIST_PYPI" .'),
  build_npm = env("PYPI_NPM_BUILD_NPM", 'npm pack --pack-destination "$PYPI_NPM_DIST_NPM"'),
  pypi_url = env("PYPI_NPM_PYPI_URL", "https://upload.pypi.org/legacy/"),
  pypi_user = env("PYPI_NPM_PYPI_USER", "__token__"),
  pypi_token_from = env("PYPI_NPM_PYPI_TOKEN_FROM", "PYPI_API_TOKEN"),
  npm_registry = env("PYPI_NPM_NPM_REGISTRY", "https://registry.npmjs.org/"),
  npm_token_from = env("PYPI_NPM_NPM_TOKEN_FROM", "NPM_TOKEN"),
  npm_access = env("PYPI_NPM_NPM_ACCESS"),
  forge_api = env("PYPI_NPM_FORGE_API", env("GITHUB_API_URL", "https://api.github.com")),
  forge_repo = env("PYPI_NPM_FORGE_REPO", env("GITHUB_REPOSITORY")),
  forge_token_from = env("PYPI_NPM_FORGE_TOKEN_FROM", "GITHUB_TOKEN"),
  forge_assets = env("PYPI_NPM_FORGE_ASSETS", "1") ~= "0",
  skip_ci = env("PYPI_NPM_SKIP_CI", "0") ~= "0",
}

local function checkout()
  return errors.check(git.discover("."))
end

local function root(repo)
  return (repo:workdir():gsub("/$", ""))
end

local function dist_dirs(repo)
  local d = CFG.dist:sub(1, 1) == "/" and CFG.dist or fs.join(root(repo), CFG.dist)
  return fs.join(d, "pypi"), fs.join(d, "npm")
end

-- The files that carry the version: {path (relative to the work tree), format}.
local function version_files()
  local files = { { fs.join(CFG.python_dir, "pyproject.toml"), "pyproject" } }
  for _, d in ipairs(CFG.npm_dirs) do files[#files + 1] = { fs.join(d, "package.json"), "package_json" } end
  for _, f in ipairs(CFG.version_files) do files[#files + 1] = { f } end
  for _, f in ipairs(files) do f[1] = f[1]:gsub("^%./", "") end
  return files
end

-- Is the version in a file (read as format) the version v? PEP 440 for Python files.
local function same_version(have, v, format)
  if have == v then return true end
  if format ~= "package_json" then
    local pep440 = require "relua.pep440"
    return pep440.normalize(have) ~= nil and pep440.normalize(have) == pep440.normalize(v)
  end
  return false
end

-- Every version file of the work tree says v: true, or false and the first that does not.
local function files_say(repo, v)
  local vf = require "relua.versionfile"
  for _, f in ipairs(version_files()) do
    local have = vf.get(fs.join(root(repo), f[1]), { format = f[2] })
    if not same_version(have, v, f[2]) then return false, string.format("%s says %s", f[1], tostring(have)) end
  end
  return true
end

-- The version the branch's Python project says when its release part is past v (a later
-- release moved the branch on: finalize of an older ticket must not move it back), else nil.
local function branch_past(repo, v)
  local pep440 = require "relua.pep440"
  local f = version_files()[1]
  local ok, have = pcall(require("relua.versionfile").get, fs.join(root(repo), f[1]), { format = f[2] })
  if not ok or type(have) ~= "string" then return nil end
  local a, b = pep440.parse((have:gsub("%+.*$", ""))), pep440.parse(v)
  if a and b and pep440.compare(a, b) > 0 then return have end
  return nil
end

local function set_files(repo, v)
  local vf = require "relua.versionfile"
  local paths = {}
  for _, f in ipairs(version_files()) do
    vf.set(fs.join(root(repo), f[1]), v, { format = f[2] })
    paths[#paths + 1] = f[1]
  end
  return paths
end

local function fetch(r, repo)
  r:act("fetch " .. CFG.remote, function() errors.check(repo:fetch(CFG.remote, nil, { tags = "all" })) end)
end

-- The forge client (nil and why when the forge is not configured).
local function forge_client()
  if not CFG.forge_repo then
    return nil, "PYPI_NPM_FORGE_REPO (or GITHUB_REPOSITORY) is not set: set it to owner/name"
  end
  local secret = require "relua.secret"
  return require("relua.forge").new({ api = CFG.forge_api, repo = CFG.forge_repo,
    token = secret.env(CFG.forge_token_from) })
end

-- The release tags on the remote (asked now). A tag only this checkout has was made by a
-- run that died before pushing it: it does not count (prepare makes it again). When the
-- remote cannot be asked (a dry run offline), the checkout's tags.
local function release_tag_names(repo)
  local refs = repo:ls_remote(CFG.remote)
  if not refs then return errors.check(repo:tag_names(CFG.prefix .. "*")) end
  local out = {}
  for _, ref in ipairs(refs) do
    local name = ref.name:match("^refs/tags/(.+)$")
    if name and name:sub(1, #CFG.prefix) == CFG.prefix then out[#out + 1] = name end
  end
  return out
end

-- The highest release tag (any branch: a tag pushed by a failed run counts, so a new
-- ticket never cuts a version that exists; one never pushed does not, so none is
-- skipped): version string or nil.
local function last_tag_version(repo)
  local semver = require "relua.semver"
  local _, v = semver.max(release_tag_names(repo), { prefix = CFG.prefix })
  return v and v:tostring() or nil
end

-- The version a new release cuts: PYPI_NPM_VERSION, else bump(last tag, PYPI_NPM_BUMP).
local function next_version(repo, base)
  local semver = require "relua.semver"
  if CFG.version then
    local v = semver.parse(CFG.version, { prefix = CFG.prefix })
    if not v then
      errors.usage(string.format("PYPI_NPM_VERSION '%s' is not a SemVer version", CFG.version),
        "set it to MAJOR.MINOR.PATCH, e.g. 1.4.0, or unset it to compute the next version")
    end
    return v:tostring()
  end
  local last = last_tag_version(repo)
  local level = CFG.bump
  if level == "auto" then
    local n = errors.check(require("relua.versioning").next(repo, { prefix = CFG.prefix, from = base }))
    level = n.bump
    if not level then
      errors.raise("nothing_to_release", string.format("prepare: no fix, feat or breaking commit since %s%s: nothing to release",
        CFG.prefix, tostring(last)), { hint = "set PYPI_NPM_BUMP=patch (or minor, major) to release anyway" })
    end
  elseif level ~= "patch" and level ~= "minor" and level ~= "major" then
    errors.usage(string.format("PYPI_NPM_BUMP '%s' is not patch, minor, major or auto", level),
      "set PYPI_NPM_BUMP=patch (or minor, major, auto)")
  end
  if not last then return CFG.initial end
  return semver.bump(semver.parse(last), level):tostring()
end

-- The release notes: the Conventional Commits since the last reachable release tag.
local function notes_for(repo, base, v)
  local ok, n = pcall(require("relua.versioning").next, repo, { prefix = CFG.prefix, from = base, bump = "patch" })
  if not ok or not n or not n.commits then return "Release " .. v .. "\n" end
  local commit_url = CFG.forge_repo and ("https://github.com/" .. CFG.forge_repo .. "/commit/") or nil
  if CFG.forge_api ~= "https://api.github.com" then commit_url = nil end
  return require("relua.conventional").notes(n.commits, { version = v, commit_url = commit_url })
end

-- Moves the (clean) checkout to rev. Refused when HEAD holds commits that neither the
-- branch on the remote (as last fetched), BASE_SHA, rev nor a release tag has: they would
-- be lost.
local function move_to(r, repo, rev, why)
  local head = repo:head().id
  if head == rev then return end
  local base = r.state.BASE_SHA
  local tracking = repo:rev_parse(CFG.remote .. "/" .. CFG.branch)
  local safe = head == r.state.DEV_SHA  -- finalize's own commit, pushed or about to be
    or (tracking and errors.check(repo:is_ancestor(head, tracking)))
    or (base and errors.check(repo:is_ancestor(head, base)))
    or errors.check(repo:is_ancestor(head, rev))
  if not safe then
    for _, t in ipairs(errors.check(repo:tags(CFG.prefix .. "*"))) do
      if t.commit == head then safe = true break end
    end
  end
  if not safe then
    errors.raise("diverged", string.format("the checkout's HEAD %s has commits that %s/%s does not have",
      head:sub(1, 12), CFG.remote, CFG.branch),
      { hint = "push them (or release from a clean clone of " .. CFG.remote .. "), then run again" })
  end
  r:act(string.format("move the checkout to %s (%s)", rev:sub(1, 12), why), function()
    errors.check(repo:reset(rev, "hard"))
  end)
end

-- The branch's head on the remote (asked now, not the last fetch).
local function remote_head(repo)
  for _, ref in ipairs(errors.check(repo:ls_remote(CFG.remote))) do
    if ref.name == "refs/heads/" .. CFG.branch then return ref.id end
  end
  errors.raise("ENOTFOUND", string.format("%s has no branch %s", CFG.remote, CFG.branch))
end

-- The tag on the remote: its commit, or nil.
local function remote_tag(repo, tag)
  for _, ref in ipairs(errors.check(repo:ls_remote(CFG.remote))) do
    if ref.name == "refs/tags/" .. tag then return ref.commit end
  end
  return nil
end

-- The release commit of version v: the tag's commit when a run already pushed it (reused
-- when its files say v), else a new commit on BASE_SHA setting the version files to v.
local function release_commit(r, repo, v, tag)
  local pushed = remote_tag(repo, tag)
  if pushed then
    errors.check(repo:fetch(CFG.remote, { "refs/tags/" .. tag .. ":refs/tags/" .. tag }))
    move_to(r, repo, pushed, "the tag " .. tag)
    local ok, why = files_say(repo, v)
    if not ok then
      errors.raise("tag_exists", string.format("prepare: the tag %s already exists on %s at %s, whose %s, not %s",
        tag, CFG.remote, pushed:sub(1, 12), why, v),
        { hint = "that tag is not this release: release another version (a new ticket), or delete the tag if it is wrong" })
    end
    r:log(string.format("the tag %s was already pushed (by an earlier run) at %s: reused", tag, pushed:sub(1, 12)))
    return pushed
  end
  local local_tag, at = repo:tag_exists(tag)
  if local_tag then  -- made by a run that died before pushing it: made again below
    r:act(string.format("delete the local tag %s at %s (never pushed)", tag, tostring(at):sub(1, 12)), function()
      errors.check(repo:tag_delete(tag))
    end)
  end
  move_to(r, repo, r.state.BASE_SHA, "the commit released")
  local paths = set_files(repo, v)
  local sha = errors.check(repo:commit("chore(release): " .. v, paths))
  r:log("release commit " .. sha .. " sets the version to " .. v)
  return sha
end

local function publish_env(repo)
  local pypi_dir, npm_dir = dist_dirs(repo)
  return pypi_dir, npm_dir
end

-- The artifacts of the build, checked to be version v: {pypi = {paths}, npm = {paths}}.
local function artifacts(repo, v)
  local pypi = require "relua.registry.pypi"
  local npm = require "relua.registry.npm"
  local pep440 = require "relua.pep440"
  local pypi_dir, npm_dir = publish_env(repo)
  local out = { pypi = {}, npm = {} }
  local kinds = {}
  for _, pattern in ipairs({ fs.join(pypi_dir, "*.whl"), fs.join(pypi_dir, "*.tar.gz") }) do
    for _, path in ipairs(fs.glob(pattern)) do
      local d = errors.check(pypi.inspect(path))
      if pep440.normalize(d.version) ~= pep440.normalize(v) then
        errors.raise("wrong_version", string.format("build: %s is version %s, not %s", fs.basename(path), d.version, v),
          { hint = "the build must read the version from the release commit's files" })
      end
      kinds[d.filetype] = true
      out.pypi[#out.pypi + 1] = path
    end
  end
  if not kinds.bdist_wheel or not kinds.sdist then
    errors.raise("ENOENT", string.format("build: %s needs a wheel and an sdist of %s (found %d file(s))", pypi_dir, v, #out.pypi),
      { hint = "PYPI_NPM_BUILD_PYTHON must write both into $PYPI_NPM_DIST_PYPI" })
  end
  for _, path in ipairs(fs.glob(fs.join(npm_dir, "*.tgz"))) do
    local t = errors.check(npm.inspect(path))
    if t.version ~= v then
      errors.raise("wrong_version", string.format("build: %s is version %s, not %s", fs.basename(path), t.version, v),
        { hint = "the build must read the version from the release commit's files" })
    end
    out.npm[#out.npm + 1] = path
  end
  if #out.npm ~= #CFG.npm_dirs then
    errors.raise("ENOENT", string.format("build: %d npm package folder(s) but %d tarball(s) in %s", #CFG.npm_dirs, #out.npm, npm_dir),
      { hint = "PYPI_NPM_BUILD_NPM must write one tarball per folder into $PYPI_NPM_DIST_NPM" })
  end
  table.sort(out.pypi)
  table.sort(out.npm)
  return out
end

local function npm_target(repo)
  local _, npm_dir = publish_env(repo)
  return { name = "npm", role = "primary", adapter = "npm", artifacts = { fs.join(npm_dir, "*.tgz") },
    opts = { registry = CFG.npm_registry, access = CFG.npm_access, token_env = CFG.npm_token_from },
    secrets = { token = CFG.npm_token_from } }
end

local function pypi_target(repo)
  local pypi_dir = publish_env(repo)
  return { name = "pypi", role = "primary", adapter = "pypi",
    artifacts = { fs.join(pypi_dir, "*.whl"), fs.join(pypi_dir, "*.tar.gz") },
    opts = { url = CFG.pypi_url, user = CFG.pypi_user }, secrets = { password = CFG.pypi_token_from } }
end

-- Before npm is published: no registry may hold other bytes for this version (PyPI is
-- looked at too, so a burned PyPI version never leaves npm half released). A registry
-- that cannot be read is not a refusal here: its own phase finds out.
-- A dry run before prepare ever ran has no release commit: say what the phase would do.
local function dry_without_release(r, what)
  if r.dry_run and not r.state.RELEASE_SHA then
    r:log("(dry run) would " .. what .. " (once prepare has cut the release commit)")
    return true
  end
  return false
end

local function burned(repo)
  local targets = require "relua.publish.targets"
  local out = {}
  for _, t in ipairs(targets.declare({ npm_target(repo), pypi_target(repo) })) do
    local ok, l = pcall(targets.look, t)
    for i, c in ipairs(ok and l.checks or {}) do
      if c.state == "different" then
        local msg, hint = l.adapter.immutable(l.arts[i], c.remote_digest, l.adapter.where(l.opts))
        out[#out + 1] = { target = t.name, message = msg, hint = hint }
      end
    end
  end
  return out
end

local function not_burned(repo)
  local b = burned(repo)[1]
  if b then
    errors.raise("immutable", string.format("target %s: %s; nothing was sent to any target", b.target, b.message),
      { hint = b.hint, target = b.target })
  end
end

-- A publish phase: the build checked, then verify-or-publish to the target.
local function publish_to(target, title, first)
  return function(r)
    if dry_without_release(r, "publish to " .. title) then return end
    local repo <close> = checkout()
    artifacts(repo, r.state.VERSION)
    if first then first(repo) end
    require("relua.publish.targets").publish(r, { target(repo) }, { title = title .. " " .. r.state.TAG })
  end
end

local function ensure_at_release(r, repo)
  local sha = r.state.RELEASE_SHA
  if not sha then errors.raise("no_release", "no release commit recorded: run prepare first") end
  repo:assert_clean({ untracked = false })
  move_to(r, repo, sha, "the release commit " .. tostring(r.state.TAG))
end

-- What the playbooks (playbooks/pypi-npm-*.lua) need of this recipe, as ctx.recipe._pn.
local PB = { config = CFG, checkout = checkout, forge_client = forge_client, remote_tag = remote_tag,
             remote_head = remote_head, files_say = files_say, last_tag_version = last_tag_version }

--- The registries (npm, PyPI) that hold other bytes than the build for its version:
--- {"TARGET: message", ...} (empty when none, or when nothing is built).
function PB.burned()
  local repo <close> = checkout()
  local out = {}
  for i, b in ipairs(burned(repo)) do out[i] = b.target .. ": " .. b.message end
  return out
end

--- The recorded results of a publish target: how many artifacts are out (published or
--- skipped_existing) and the others as "LABEL (STATUS)", sorted.
function PB.progress(state, target)
  local rec = type(state.publish) == "table" and state.publish[target] or nil
  local done, missing = 0, {}
  for label, x in pairs(rec and rec.results or {}) do
    if x.status == "published" or x.status == "skipped_existing" then done = done + 1
    else missing[#missing + 1] = label .. " (" .. tostring(x.status) .. ")" end
  end
  table.sort(missing)
  return done, missing
end

--- Is every artifact of the build out on the target (by the ticket's records)?
function PB.complete(state, target)
  local arts = type(state.ARTIFACTS) == "table" and state.ARTIFACTS[target] or nil
  local done, missing = PB.progress(state, target)
  if not arts or #arts == 0 then return false, "no build recorded" end
  if done >= #arts and #missing == 0 then return true, string.format("%s: all %d artifact(s) out", target, done) end
  return false, string.format("%s: %d of %d out%s", target, done, #arts,
    #missing > 0 and ("; not: " .. table.concat(missing, ", ")) or "")
end

--- Logs what a re-run of a publish to target will fill: the artifacts out, the others.
function PB.log_gaps(ctx, target, what)
  local done, missing = PB.progress(ctx.state, target)
  ctx:log(string.format("%s: %d %s out; to send: %s", target, done, what,
    #missing > 0 and table.concat(missing, ", ") or "the rest of the build"))
end

--- Does the server at url answer (any HTTP status below 500)? ok, and what it said.
function PB.answers(url, what)
  local resp, msg = require("relua.http").get(url, { retry = false, progress = false, timeout = 10 })
  if not resp then return false, string.format("%s (%s) does not answer: %s", what, url, tostring(msg)) end
  if resp.status >= 500 then return false, string.format("%s (%s) answers HTTP %d", what, url, resp.status) end
  return true, string.format("%s (%s) answers (HTTP %d)", what, url, resp.status)
end

-- The pre-flight (doc/preflight.md): every setting a phase would trip on later, checked
-- before the first phase runs, so a typo never leaves a half-done ticket (a pushed tag, or
-- packages out and no forge release). Registries are not asked here: a registry down is a
-- phase's failure, with its playbook.
local function settings()
  local semver = require "relua.semver"
  local out = {}
  local function bad(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  if not ({ patch = true, minor = true, major = true, auto = true })[CFG.bump] then
    bad("PYPI_NPM_BUMP '%s' is not patch, minor, major or auto", CFG.bump)
  end
  if CFG.version and not semver.parse(CFG.version, { prefix = CFG.prefix }) then
    bad("PYPI_NPM_VERSION '%s' is not a SemVer version (MAJOR.MINOR.PATCH, e.g. 1.4.0)", CFG.version)
  end
  if not semver.parse(CFG.initial) then bad("PYPI_NPM_INITIAL '%s' is not a SemVer version", CFG.initial) end
  if not CFG.forge_repo then bad("PYPI_NPM_FORGE_REPO (or GITHUB_REPOSITORY) is not set: set it to owner/name") end
  for _, name in ipairs({ CFG.pypi_token_from, CFG.npm_token_from, CFG.forge_token_from }) do
    if (os.getenv(name) or "") == "" then bad("%s is not set (the token it names): set it in the CI secrets", name) end
  end
  local repo <close>, msg = git.discover(".")
  if not repo then
    bad("%s: run the recipe in a checkout of the project", tostring(msg))
  else
    local vf = require "relua.versionfile"
    local where = "(PYPI_NPM_PYTHON_DIR, PYPI_NPM_NPM_DIRS and PYPI_NPM_VERSION_FILES name the files that carry the version)"
    for _, f in ipairs(version_files()) do
      local path = fs.join(root(repo), f[1])
      if not fs.exists(path) then
        bad("%s: no such file in the checkout %s", f[1], where)
      else
        local ok, e = pcall(vf.get, path, { format = f[2] })
        if not ok then bad("%s %s", type(e) == "table" and e.message or tostring(e), where) end
      end
    end
  end
  return #out == 0, #out == 0 and "all set" or table.concat(out, "; ")
end

return {
  name = "pypi-npm",
  _pn = PB,
  preflight = { { name = "settings, tokens and version files", run = settings } },
  phases = {
    {
      name = "gate",
      description = "CI is green for the commit to release (PYPI_NPM_SKIP_CI=1 skips it)",
      run = function(r)
        local repo <close> = checkout()
        fetch(r, repo)
        -- the branch's head; a retry of a version whose tag exists (PYPI_NPM_VERSION) is
        -- gated on the commit that version was cut from: the tag's parent
        local base = errors.check(repo:rev_parse(CFG.remote .. "/" .. CFG.branch))
        local tagged = CFG.version and remote_tag(repo, CFG.prefix .. CFG.version)
        if tagged then
          errors.check(repo:fetch(CFG.remote, { "refs/tags/" .. CFG.prefix .. CFG.version .. ":refs/tags/" .. CFG.prefix .. CFG.version }))
          base = errors.check(repo:log(tagged, { limit = 1 }))[1].parents[1] or base
        end
        r.state.BASE_SHA = base
        if CFG.skip_ci then
          r:log("CI check skipped (PYPI_NPM_SKIP_CI): releasing " .. base:sub(1, 12) .. " at your own risk")
          return
        end
        local c, why = forge_client()
        if not c then errors.raise("usage", "gate: " .. why, { hint = "or set PYPI_NPM_SKIP_CI=1 to release without the CI check" }) end
        local verdict = c:ci(base)
        if verdict.state ~= "success" then
          errors.raise("ci_not_green", string.format("gate: CI is not green for %s (%s): %s", base:sub(1, 12),
            verdict.state, verdict.summary or ""),
            { hint = "fix CI and run again, wait for CI to finish and run again, or set PYPI_NPM_SKIP_CI=1 " ..
              "to release anyway (at your risk); nothing was done" })
        end
        r:log("CI is green for " .. base:sub(1, 12))
      end,
    },
    {
      name = "prepare",
      description = "compute the version (a retry reuses the recorded one), commit it, push the tag",
      run = function(r)
        local repo <close> = checkout()
        repo:assert_clean({ untracked = false })
        fetch(r, repo)
        if not r.state.VERSION then
          r.state.VERSION = next_version(repo, r.state.BASE_SHA)
          r:log("version " .. r.state.VERSION .. " (" .. (CFG.version and "PYPI_NPM_VERSION" or ("bump " .. CFG.bump)) .. ")")
        else
          r:log("version " .. r.state.VERSION .. " (recorded by this ticket: reused)")
        end
        local v = r.state.VERSION
        local tag = CFG.prefix .. v
        r.state.TAG = tag
        local sha = r:step("release-commit-" .. v, function() return release_commit(r, repo, v, tag) end)
        if sha == nil and r.dry_run then
          r:log(string.format("(dry run) would commit %s on %s, tag it %s and push the tag", v,
            tostring(r.state.BASE_SHA):sub(1, 12), tag))
          return
        end
        r.state.RELEASE_SHA = sha
        move_to(r, repo, sha, "the release commit " .. tag)
        if r.state["release-notes"] == nil then r.state["release-notes"] = notes_for(repo, r.state.BASE_SHA, v) end
        r:step("push-tag-" .. v, function()
          local ok, how = repo:tag(tag, sha, { message = "Release " .. v })
          if not ok then
            errors.raise("tag_exists", "prepare: " .. how, { hint = "release another version (a new ticket)" })
          end
          errors.check(repo:push(CFG.remote, { "refs/tags/" .. tag }))
          r:log("tag " .. tag .. " (" .. how .. ") pushed to " .. CFG.remote)
          return tag
        end)
      end,
      revert = function(r)
        local repo <close> = checkout()
        local tag = r.state.TAG
        if tag then
          r:act("delete the tag " .. tag .. " on " .. CFG.remote, function()
            errors.check(repo:push_delete_tag(CFG.remote, tag))
          end)
          r:act("delete the local tag " .. tag, function() errors.check(repo:tag_delete(tag)) end)
        end
        if r.state.BASE_SHA then
          r:act("reset the checkout to " .. r.state.BASE_SHA, function()
            errors.check(repo:reset(r.state.BASE_SHA, "hard"))
          end)
        end
      end,
    },
    {
      name = "build",
      description = "build the wheel, the sdist and the npm tarballs of the release commit",
      run = function(r)
        if dry_without_release(r, "build the wheel, the sdist and the npm tarballs") then return end
        local repo <close> = checkout()
        ensure_at_release(r, repo)
        local pypi_dir, npm_dir = dist_dirs(repo)
        for _, d in ipairs({ pypi_dir, npm_dir }) do
          if fs.exists(d) then errors.check(fs.remove(d, { recursive = true })) end
        end
        errors.check(fs.mkdir(pypi_dir))
        errors.check(fs.mkdir(npm_dir))
        local c = errors.check(repo:log(r.state.RELEASE_SHA, { limit = 1 }))[1]
        local e = { SOURCE_DATE_EPOCH = tostring(math.tointeger(c.committer and c.committer.time or c.time)),
                    PYPI_NPM_DIST_PYPI = pypi_dir, PYPI_NPM_DIST_NPM = npm_dir }
        r:sh(CFG.build_python, { cwd = fs.join(root(repo), CFG.python_dir), env = e })
        for _, d in ipairs(CFG.npm_dirs) do
          r:sh(CFG.build_npm, { cwd = fs.join(root(repo), d), env = e })
        end
        local arts = artifacts(repo, r.state.VERSION)
        local names = { pypi = {}, npm = {} }
        for k, list in pairs(arts) do
          for i, p in ipairs(list) do names[k][i] = fs.basename(p) end
        end
        r.state.ARTIFACTS = names
        r:log("built " .. table.concat(names.npm, ", ") .. ", " .. table.concat(names.pypi, ", "))
      end,
      revert = function(r)
        local repo <close> = checkout()
        local pypi_dir, npm_dir = dist_dirs(repo)
        r:act("remove the builds", function()
          fs.remove(pypi_dir, { recursive = true })
          fs.remove(npm_dir, { recursive = true })
        end)
      end,
    },
    {
      name = "npm-publish",
      description = "publish the npm tarballs (before PyPI: npm has no skip-existing)",
      irreversible = "published to npm",
      run = publish_to(npm_target, "npm", not_burned),
    },
    {
      name = "pypi-publish",
      description = "publish the wheel and the sdist (files already there and identical are skipped)",
      irreversible = "published to PyPI",
      run = publish_to(pypi_target, "PyPI"),
    },
    {
      name = "forge-release",
      description = "the forge release of the tag (get-or-create), with the builds as assets",
      run = function(r)
        if dry_without_release(r, "create the forge release") then return end
        local repo <close> = checkout()
        local c, why = forge_client()
        if not c then errors.raise("usage", "forge-release: " .. why) end
        local rel, how = c:release(r.state.TAG, { name = r.state.TAG, body = r.state["release-notes"],
          target = r.state.RELEASE_SHA })
        r:log(string.format("forge release %s: %s", r.state.TAG, how))
        r.state.RELEASE_URL = rel.html_url
        if CFG.forge_assets then
          local arts = artifacts(repo, r.state.VERSION)
          local files = {}
          for _, p in ipairs(arts.npm) do files[#files + 1] = p end
          for _, p in ipairs(arts.pypi) do files[#files + 1] = p end
          require("relua.publish.targets").publish(r, { {
            name = "forge", role = "primary", adapter = "forge", artifacts = files,
            opts = { api = CFG.forge_api, repo = CFG.forge_repo, tag = r.state.TAG, release = rel },
            secrets = { token = CFG.forge_token_from } } }, { title = "forge " .. r.state.TAG })
        end
      end,
    },
    {
      name = "finalize",
      description = "move the branch's version to X.Y.Z+dev and push it",
      followup = true,
      run = function(r)
        if dry_without_release(r, "move the branch to the +dev version") then return end
        local repo <close> = checkout()
        repo:assert_clean({ untracked = false })
        local dev = r.state.VERSION .. CFG.dev_suffix
        fetch(r, repo)
        local head = errors.check(repo:rev_parse(CFG.remote .. "/" .. CFG.branch))
        if errors.check(repo:is_ancestor(head, r.state.RELEASE_SHA)) then
          -- the branch has not moved since the release was cut: the +dev commit goes on
          -- the release commit, so the tag is on the branch
          move_to(r, repo, r.state.RELEASE_SHA, "the release commit")
        else
          move_to(r, repo, head, CFG.remote .. "/" .. CFG.branch)
          local past = branch_past(repo, r.state.VERSION)
          if files_say(repo, dev) or past then
            r.state.DEV_SHA = head
            r:log(string.format("%s/%s already says %s: nothing to push", CFG.remote, CFG.branch,
              past and (past .. ", past " .. r.state.VERSION) or dev))
            return
          end
        end
        -- a +dev commit an earlier attempt made on the same parent is pushed as it is
        local parent = repo:head().id
        local sha = r.state.DEV_SHA
        local prev = sha and repo:log(sha, { limit = 1 })
        if prev and prev[1] and prev[1].parents[1] == parent then
          move_to(r, repo, sha, "the +dev commit of an earlier attempt")
        else
          local paths = set_files(repo, dev)
          sha = errors.check(repo:commit("chore: back to development (" .. dev .. ")", paths))
          r.state.DEV_SHA = sha
        end
        local branch = "relua/pypi-npm-finalize"
        errors.check(repo:branch_create(branch, sha, { force = true }))
        local ok, msg, code = repo:push(CFG.remote, { "refs/heads/" .. branch .. ":refs/heads/" .. CFG.branch })
        repo:branch_delete(branch)
        if not ok then
          errors.raise(code or "push", "finalize: " .. msg, { hint = CFG.branch .. " moved or the remote refused: run the finalize phase again" })
        end
        r:log(string.format("%s/%s is now %s (%s)", CFG.remote, CFG.branch, dev, sha:sub(1, 12)))
      end,
    },
  },
}
