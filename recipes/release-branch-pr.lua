-- recipes/release-branch-pr.lua: release a Python package through a release branch and a
-- pull request back to main, as the release-recovery runbook of seed 001 describes: a
-- branch release/pypi-vX.Y.Z from main, the version bumped in pyproject.toml there, the
-- tag vX.Y.Z, the upload to PyPI, the forge (GitHub) release, and a pull request that
-- brings the version back to main. The TICKET names the release run (a CI run id, an
-- issue): a retry of the same ticket releases the version it recorded.
--
--   relua recipes/release-branch-pr.lua 42              release (or resume) ticket 42
--   relua recipes/release-branch-pr.lua 42 --from=pypi-upload  publish what is missing, and on
--   relua status 42 / relua log 42                      where it stands / the audit log
--   relua diagnose 42 / relua recover 42                the playbooks (playbooks/release-branch-pr-*)
--   relua revert 42                                     before PyPI: delete the tag and the branch
--
-- Pre-flight (the runbook's pre-release checklist, fail closed, nothing runs when one
-- fails): the settings (the version, branch and tag it would release); the PyPI and forge tokens are set (names shown, never values); PyPI and the
-- forge answer with them; no orphaned release branch of another version (one whose
-- version was never tagged); the working tree is clean; CI is green for the commit
-- released. This version's own branch and tag are the release-branch and release-tag
-- phases' business: they stop with the runbook's scenario A / B, which `relua diagnose` names.
--
-- Phases: release-branch (release/pypi-vX.Y.Z at main's head, pushed) -> version-bump (the
-- version in the project file, committed on the branch, pushed) -> release-tag (vX.Y.Z at
-- that commit, pushed) -> dist (wheel + sdist of the tagged commit) -> pypi-upload
-- (verify-or-publish: files already there and identical are skipped; other bytes stop with
-- "bump the version"; the point of no return) -> github-release (the forge release,
-- get-or-create) -> pull-request (find-or-open, the branch into main) -> verify-release (the
-- runbook's post-release verification: PyPI, the tag, the release, the pull request, the
-- branch). Every step finds what exists and does only the missing ones, so a re-run, a
-- `--from` or another runner without this ticket's ledger
-- (BRANCH_PR_VERSION=X.Y.Z) never publishes anything twice.
--
-- Settings come from the environment (this interface is stable; defaults in brackets):
--   BRANCH_PR_REMOTE           the git remote [origin]; HTTP credentials: RELUA_GIT_USERNAME
--                              + RELUA_GIT_PASSWORD, or RELUA_GIT_TOKEN (relua.git)
--   BRANCH_PR_BASE             the branch released from, and the pull request's base [main]
--   BRANCH_PR_BRANCH_PREFIX    the release branch is this + the version [release/pypi-v]
--   BRANCH_PR_BUMP             patch | minor | major [patch]
--   BRANCH_PR_VERSION          release exactly this version (a retry from a runner without
--                              the ledger: what exists is found and reused) [computed]
--   BRANCH_PR_TAG_PREFIX       [v]
--   BRANCH_PR_INITIAL          the first version when there is no tag yet [0.1.0]
--   BRANCH_PR_PYTHON_DIR       the folder holding pyproject.toml [.]
--   BRANCH_PR_VERSION_FILES    more files holding the version (e.g. src/pkg/__init__.py) []
--   BRANCH_PR_DIST             where the build goes [dist]
--   BRANCH_PR_BUILD            run in PYTHON_DIR, must write the wheel and the sdist into
--                              $BRANCH_PR_DIST, with SOURCE_DATE_EPOCH set to the tagged
--                              commit's time [python3 -m build --sdist --wheel --outdir "$BRANCH_PR_DIST" .]
--   BRANCH_PR_PYPI_URL         the PyPI upload URL [https://upload.pypi.org/legacy/]
--   BRANCH_PR_PYPI_USER        [__token__]
--   BRANCH_PR_PYPI_TOKEN_FROM  the variable holding the PyPI token [PYPI_API_TOKEN]
--   BRANCH_PR_FORGE_API        [$GITHUB_API_URL, else https://api.github.com]
--   BRANCH_PR_FORGE_REPO       owner/name [$GITHUB_REPOSITORY]
--   BRANCH_PR_FORGE_TOKEN_FROM the variable holding the forge token [GITHUB_TOKEN]
--   BRANCH_PR_SKIP_CI          1: pre-flight does not ask the forge for CI [0]
-- State values (r.state): VERSION, BRANCH, TAG, BASE_SHA (main's head released),
-- BUMP_SHA (the version commit, tagged), ARTIFACTS, publish, RELEASE_URL, PR, PR_URL.
local git = require "relua.git"
local errors = require "relua.error"
local fs = require "relua.fs"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local CFG = {
  remote = env("BRANCH_PR_REMOTE", "origin"),
  base = env("BRANCH_PR_BASE", "main"),
  branch_prefix = env("BRANCH_PR_BRANCH_PREFIX", "release/pypi-v"),
  bump = env("BRANCH_PR_BUMP", "patch"),
  version = env("BRANCH_PR_VERSION"),
  prefix = env("BRANCH_PR_TAG_PREFIX", "v"),
  initial = env("BRANCH_PR_INITIAL", "0.1.0"),
  python_dir = env("BRANCH_PR_PYTHON_DIR", "."),
  version_files = {},
  dist = env("BRANCH_PR_DIST", "dist"),
  build = env("BRANCH_PR_BUILD", 'python3 -m build --sdist --wheel --outdir "$BRANCH_PR_DIST" .'),
  pypi_url = env("BRANCH_PR_PYPI_URL", "https://upload.pypi.org/legacy/"),
  pypi_user = env("BRANCH_PR_PYPI_USER", "__token__"),
  pypi_token_from = env("BRANCH_PR_PYPI_TOKEN_FROM", "PYPI_API_TOKEN"),
  forge_api = env("BRANCH_PR_FORGE_API", env("GITHUB_API_URL", "https://api.github.com")),
  forge_repo = env("BRANCH_PR_FORGE_REPO", env("GITHUB_REPOSITORY")),
  forge_token_from = env("BRANCH_PR_FORGE_TOKEN_FROM", "GITHUB_TOKEN"),
  skip_ci = env("BRANCH_PR_SKIP_CI", "0") ~= "0",
}
for w in env("BRANCH_PR_VERSION_FILES", ""):gmatch("%S+") do CFG.version_files[#CFG.version_files + 1] = w end

local BUMP_SUBJECT = "chore(release): "

local function checkout()
  return errors.check(git.discover("."))
end

local function root(repo)
  return (repo:workdir():gsub("/$", ""))
end

local function dist_dir(repo)
  return CFG.dist:sub(1, 1) == "/" and CFG.dist or fs.join(root(repo), CFG.dist)
end

-- The files that carry the version: {path (relative to the work tree), format}.
local function version_files()
  local files = { { (fs.join(CFG.python_dir, "pyproject.toml"):gsub("^%./", "")), "pyproject" } }
  for _, f in ipairs(CFG.version_files) do files[#files + 1] = { (f:gsub("^%./", "")) } end
  return files
end

-- The refs on the remote, asked now: {["refs/heads/main"] = commit, ["refs/tags/v1"] = commit}
-- (a tag maps to the commit it points at).
local function remote_refs(repo)
  local out = {}
  for _, ref in ipairs(errors.check(repo:ls_remote(CFG.remote))) do out[ref.name] = ref.commit end
  return out
end

-- The version this ticket releases: the recorded one, else BRANCH_PR_VERSION, else the
-- highest release tag on the remote bumped by BRANCH_PR_BUMP.
local function planned_version(refs, state)
  local semver = require "relua.semver"
  if state and state.VERSION then return state.VERSION end
  if CFG.version then
    local v = semver.parse(CFG.version, { prefix = CFG.prefix })
    if not v then
      errors.usage(string.format("BRANCH_PR_VERSION '%s' is not a SemVer version", CFG.version),
        "set it to MAJOR.MINOR.PATCH, e.g. 1.4.0, or unset it to compute the next version")
    end
    return v:tostring()
  end
  if CFG.bump ~= "patch" and CFG.bump ~= "minor" and CFG.bump ~= "major" then
    errors.usage(string.format("BRANCH_PR_BUMP '%s' is not patch, minor or major", CFG.bump),
      "set BRANCH_PR_BUMP=patch (or minor, major), or BRANCH_PR_VERSION to the version")
  end
  local tags = {}
  for name in pairs(refs) do
    local t = name:match("^refs/tags/(.+)$")
    if t then tags[#tags + 1] = t end
  end
  local _, last = semver.max(tags, { prefix = CFG.prefix })
  if not last then return CFG.initial end
  return semver.bump(last, CFG.bump):tostring()
end

local function branch_of(v) return CFG.branch_prefix .. v end
local function tag_of(v) return CFG.prefix .. v end

-- Is commit c (a relua.git log entry) a version bump this recipe makes: its subject is
-- "chore(release): ..." and it changes nothing but the version files?
local function is_bump(repo, c)
  if c.summary:sub(1, #BUMP_SUBJECT) ~= BUMP_SUBJECT or #c.parents ~= 1 then return false end
  local allowed = {}
  for _, f in ipairs(version_files()) do allowed[f[1]] = true end
  for _, p in ipairs(errors.check(repo:changed_paths(c.parents[1], c.id))) do
    if not allowed[p] then return false end
  end
  return true
end

--- What a branch at `tip` holds that `base` lacks: {commits = {{id=, summary=, bump=}},
--- work = the commits that are not a version bump}, newest first (git log base..tip).
local function compare(repo, base, tip)
  local out = { commits = {}, work = {} }
  for _, c in ipairs(errors.check(repo:log(base .. ".." .. tip))) do
    local e = { id = c.id, summary = c.summary, bump = is_bump(repo, c) }
    out.commits[#out.commits + 1] = e
    if not e.bump then out.work[#out.work + 1] = e end
  end
  return out
end

local function fetch(r, repo)
  r:act("fetch " .. CFG.remote, function() errors.check(repo:fetch(CFG.remote, nil, { tags = "all" })) end)
end

-- The forge client (nil and why when the forge is not configured).
local function forge_client()
  if not CFG.forge_repo then
    return nil, "BRANCH_PR_FORGE_REPO (or GITHUB_REPOSITORY) is not set: set it to owner/name"
  end
  return require("relua.forge").new({ api = CFG.forge_api, repo = CFG.forge_repo,
    token = require("relua.secret").env(CFG.forge_token_from) })
end

local function forge_or_raise(what)
  local c, why = forge_client()
  if not c then errors.usage(what .. ": " .. why, "set it to the repository on the forge, e.g. acme/mylib") end
  return c
end

local function pypi_target(d)
  return { name = "pypi", role = "primary", adapter = "pypi",
    artifacts = { fs.join(d, "*.whl"), fs.join(d, "*.tar.gz") },
    opts = { url = CFG.pypi_url, user = CFG.pypi_user }, secrets = { password = CFG.pypi_token_from } }
end

-- The build, checked: the wheel and the sdist of version v (paths, sorted).
local function artifacts(repo, v)
  local pypi = require "relua.registry.pypi"
  local pep440 = require "relua.pep440"
  local d = dist_dir(repo)
  local out, kinds = {}, {}
  for _, pattern in ipairs({ "*.whl", "*.tar.gz" }) do
    for _, path in ipairs(fs.glob(fs.join(d, pattern))) do
      local info = errors.check(pypi.inspect(path))
      if pep440.normalize(info.version) ~= pep440.normalize(v) then
        errors.raise("wrong_version", string.format("dist: %s is version %s, not %s", fs.basename(path), info.version, v),
          { hint = "the build must read the version from the tagged commit's pyproject.toml" })
      end
      kinds[info.filetype] = true
      out[#out + 1] = path
    end
  end
  if not kinds.bdist_wheel or not kinds.sdist then
    errors.raise("ENOENT", string.format("dist: %s needs a wheel and an sdist of %s (found %d file(s))", d, v, #out),
      { hint = "BRANCH_PR_BUILD must write both into $BRANCH_PR_DIST" })
  end
  table.sort(out)
  return out
end

-- Switches the (clean) checkout to the local release branch at sha.
local function on_branch(r, repo, branch, sha)
  local head = repo:head()
  if head.branch == branch and head.id == sha then return end
  r:act(string.format("check out %s at %s", branch, sha:sub(1, 12)), function()
    repo:assert_clean({ untracked = false })
    if head.branch ~= branch then errors.check(repo:branch_create(branch, sha, { force = true })) end
    errors.check(repo:checkout(branch))
    errors.check(repo:reset(sha, "hard"))
  end)
end

-- Pushes the local branch to the remote (a fast-forward, or its creation).
local function push_branch(r, repo, branch, what)
  r:act(string.format("push %s to %s (%s)", branch, CFG.remote, what), function()
    local ok, msg, code = repo:push(CFG.remote, { "refs/heads/" .. branch .. ":refs/heads/" .. branch })
    if not ok then errors.raise(code or "push", msg, { hint = "the remote refused the branch: fix that, then run again" }) end
  end)
end

local function summary_of(repo, sha)
  local c = repo:log(sha, { limit = 1 })
  return c and c[1] and c[1].summary or "?"
end

local function notes_for(v)
  return string.format("Release %s of %s.\n", v, CFG.forge_repo or "the project")
end

local function pr_body(r, name)
  local v = r.state.VERSION
  return table.concat({
    "## Release " .. v,
    "",
    "This release has been published to PyPI.",
    "",
    "- Version bumped to " .. v,
    "- Git tag: `" .. r.state.TAG .. "`" .. (r.state.RELEASE_URL and (" ([release](" .. r.state.RELEASE_URL .. "))") or ""),
    "",
    "```",
    "pip install " .. name .. "==" .. v,
    "```",
    "",
    "Merging this pull request brings the release version to " .. CFG.base .. ".",
    "" }, "\n")
end

local function project_name(repo)
  local text = fs.read(fs.join(root(repo), CFG.python_dir, "pyproject.toml")) or ""
  return text:match('\nname%s*=%s*"([^"]+)"') or "the package"
end

-- ---------------------------------------------------------------- what exists

local PB = { config = CFG, checkout = checkout, forge_client = forge_client, remote_refs = remote_refs,
             compare = compare, branch_of = branch_of, tag_of = tag_of, planned_version = planned_version,
             on_branch = on_branch, push_branch = push_branch }

--- What exists of version v's release, found from git, the index and the forge (not the
--- ledger): {branch = sha|nil, tag = sha|nil, pypi = "identical"|"different"|"missing"|
--- "partial"|"unknown: why", release = url|nil|false (false: the forge could not be read),
--- pr = {number=, state=, html_url=}|nil|false, base = sha, notes = {...}}.
function PB.inventory(v)
  local repo <close> = checkout()
  local refs = remote_refs(repo)
  local inv = { branch = refs["refs/heads/" .. branch_of(v)], tag = refs["refs/tags/" .. tag_of(v)],
                base = refs["refs/heads/" .. CFG.base] }
  local targets = require "relua.publish.targets"
  local ok, look = pcall(targets.look, targets.declare({ pypi_target(dist_dir(repo)) })[1])
  if not ok or not look.checks then
    inv.pypi = "unknown: " .. tostring(ok and (type(look.err) == "table" and look.err.message or look.err) or look)
    local okv, list = pcall(require("relua.registry.pypi").files, project_name(repo), v, { url = CFG.pypi_url })
    if okv and type(list) == "table" then inv.pypi = #list > 0 and "there (not built here)" or "missing" end
  else
    local n = { same = 0, different = 0, absent = 0, other = 0 }
    for _, c in ipairs(look.checks) do
      local k = n[c.state] and c.state or "other"
      n[k] = n[k] + 1
    end
    if n.different > 0 then inv.pypi = "different"
    elseif n.other > 0 then inv.pypi = "unknown: the index could not be read"
    elseif n.absent == 0 then inv.pypi = "identical"
    elseif n.same > 0 then inv.pypi = "partial"
    else inv.pypi = "missing" end
  end
  local c = forge_client()
  if c then
    local okr, rel = pcall(c.find_release, c, tag_of(v))
    if not okr then inv.release = false elseif rel then inv.release = rel.html_url end
    local okp, pr = pcall(c.find_pull_request, c, branch_of(v), CFG.base, "all")
    if not okp then inv.pr = false else inv.pr = pr end
  end
  return inv
end

--- The recipe's helpers for a playbook's context, or nil and why (nothing recorded yet).
function PB.of(ctx)
  if not ctx.state.VERSION then return nil, "no version recorded by the ticket" end
  return PB
end

--- The inventory as the runbook's table row: "tag: yes, PyPI: identical, release: no, PR: no".
function PB.row(inv)
  local function yn(x) if x == false then return "unknown" end return x and "yes" or "no" end
  return string.format("branch: %s, tag: %s, PyPI: %s, release: %s, PR: %s", yn(inv.branch), yn(inv.tag),
    tostring(inv.pypi), yn(inv.release), inv.pr and ("#" .. tostring(inv.pr.number) .. " " .. tostring(inv.pr.state)) or yn(inv.pr))
end

-- ---------------------------------------------------------------- pre-flight

local pf = require "relua.preflight"

local function preflight()
  local list = {}
  local forge_target = { name = "forge", role = "primary", adapter = "forge",
    opts = { api = CFG.forge_api, repo = CFG.forge_repo or "unset/unset", tag = "preflight" },
    secrets = { token = CFG.forge_token_from }, artifacts = { "(none: pre-flight only probes the forge)" } }
  local t = pf.targets({ pypi_target(CFG.dist), forge_target })
  -- set, shown by name only (the forge's own GITHUB_TOKEN of a CI job is fine here: it is
  -- not a repository secret, so pf.secrets' reserved-prefix rule does not apply)
  list[#list + 1] = { name = "tokens set", run = function()
    local secret, missing = require "relua.secret", {}
    for _, n in ipairs({ CFG.pypi_token_from, CFG.forge_token_from }) do
      if not secret.env(n) then missing[#missing + 1] = n end
    end
    if #missing > 0 then return false, "not set: " .. table.concat(missing, ", ") end
    return true, CFG.pypi_token_from .. ", " .. CFG.forge_token_from
  end }
  list[#list + 1] = t[2]
  list[#list + 1] = { name = "release settings", run = function(ctx)
    if not CFG.forge_repo then return false, (select(2, forge_client())) end
    local repo <close> = checkout()
    local ok, v = pcall(planned_version, remote_refs(repo), ctx.state)
    if not ok then
      return false, type(v) == "table" and (tostring(v.message) .. (v.hint and (": " .. v.hint) or "")) or tostring(v)
    end
    return true, string.format("version %s (%s), branch %s, tag %s, forge %s", v, ctx.state.VERSION and "recorded by the ticket" or
      (CFG.version and "BRANCH_PR_VERSION" or ("bump " .. CFG.bump)), branch_of(v), tag_of(v), CFG.forge_repo)
  end }
  list[#list + 1] = { name = "no orphaned release branch", run = function(ctx)
    local repo <close> = checkout()
    local refs = remote_refs(repo)
    local _, mine = pcall(planned_version, refs, ctx.state)  -- a bad setting: "release settings" says so
    local orphans = {}
    for name in pairs(refs) do
      local v = name:match("^refs/heads/" .. CFG.branch_prefix:gsub("%p", "%%%0") .. "(.+)$")
      if v and v ~= mine and not refs["refs/tags/" .. tag_of(v)] then orphans[#orphans + 1] = branch_of(v) end
    end
    table.sort(orphans)
    if #orphans > 0 then
      return false, string.format("%s on %s: release branch(es) of a version never tagged (an interrupted release?): " ..
        "look at them (git log %s..%s/%s) and delete what holds nothing to keep (git push %s --delete %s)",
        table.concat(orphans, ", "), CFG.remote, CFG.base, CFG.remote, orphans[1], CFG.remote, orphans[1])
    end
    return true, "none" .. (type(mine) == "string" and (" (this release's " .. branch_of(mine) .. " is checked by the release-branch phase)") or "")
  end }
  list[#list + 1] = pf.clean_tree(".")
  if not CFG.skip_ci then
    local secret = require "relua.secret"
    list[#list + 1] = pf.ci_green({ api = CFG.forge_api, repo = CFG.forge_repo, token = secret.env(CFG.forge_token_from),
      sha = function(ctx)
        if ctx.state.BASE_SHA then return ctx.state.BASE_SHA end
        local repo <close> = checkout()
        return remote_refs(repo)["refs/heads/" .. CFG.base] or repo:head().id
      end })
  end
  return list
end

-- ---------------------------------------------------------------- phases

-- A revert's delete of this ticket's branch or tag on the remote: only when it is `at` one
-- of the ticket's commits (`ours`); a ref someone moved since is left alone, and said so.
local function take_back(r, kind, name, at, ours, delete)
  if not at then return end
  for _, sha in pairs(ours) do
    if sha == at then
      r:act(string.format("delete the %s %s on %s", kind, name, CFG.remote), function() errors.check(delete()) end)
      return
    end
  end
  r:log(string.format("the %s %s on %s is at %s, not this ticket's commit: left alone", kind, name, CFG.remote, at:sub(1, 12)))
end

-- A dry run before the version commit exists (nothing was made): says what the phase
-- would do instead. True when it did.
local function dry(r, what)
  if r.dry_run and not r.state.BUMP_SHA then
    r:log("(dry run) would " .. what .. " (once version-bump has made the version commit)")
    return true
  end
  return false
end

local function need(r, key, phase)
  local v = r.state[key]
  if v == nil then errors.raise("no_" .. key:lower(), string.format("no %s recorded: run phase %s first", key, phase)) end
  return v
end

local RECIPE = {
  name = "release-branch-pr",
  _bp = PB,
  preflight = preflight(),
  phases = {
    {
      name = "release-branch",
      description = "the release branch release/pypi-vX.Y.Z at main's head, pushed (an existing one: scenario A)",
      run = function(r)
        local repo <close> = checkout()
        fetch(r, repo)
        local refs = remote_refs(repo)
        local v = planned_version(refs, r.state)
        r.state.VERSION, r.state.BRANCH, r.state.TAG = v, branch_of(v), tag_of(v)
        local branch, tag = r.state.BRANCH, r.state.TAG
        local tip, tagged = refs["refs/heads/" .. branch], refs["refs/tags/" .. tag]
        if not tip then
          local base = r.state.BASE_SHA or errors.check(repo:rev_parse(CFG.remote .. "/" .. CFG.base))
          r.state.BASE_SHA = base
          r:log(string.format("version %s: %s from %s/%s at %s", v, branch, CFG.remote, CFG.base, base:sub(1, 12)))
          on_branch(r, repo, branch, base)
          push_branch(r, repo, branch, "created")
          r.state.BRANCH_SHA = base
          return
        end
        -- this ticket's own, or exactly at the commit it releases (pushed by a run that died
        -- before recording it, or made by hand: it holds nothing main lacks either way)
        if tip == r.state.BRANCH_SHA or tip == r.state.BUMP_SHA or tip == r.state.BASE_SHA then
          r:log(string.format("%s on %s is this ticket's (at %s): reused", branch, CFG.remote, tip:sub(1, 12)))
          on_branch(r, repo, branch, tip)
          return
        end
        local c = tagged and errors.check(repo:log(tip, { limit = 1 }))[1]
        if tagged == tip and is_bump(repo, c) then
          -- an earlier run's release (another ticket, another runner): the branch holds the
          -- tagged version commit on its base; adopted, so only what is missing gets done
          r.state.BASE_SHA, r.state.BUMP_SHA, r.state.BRANCH_SHA = c.parents[1], tip, c.parents[1]
          r:log(string.format("%s on %s is at the tag %s (%s): an earlier run's release, adopted", branch, CFG.remote,
            tag, tip:sub(1, 12)))
          on_branch(r, repo, branch, tip)
          return
        end
        local main = errors.check(repo:rev_parse(CFG.remote .. "/" .. CFG.base))
        local cmp = compare(repo, main, tip)
        errors.raise("branch_exists", string.format(
          "branch: a branch named '%s' already exists on %s (at %s, %d commit(s) %s lacks, %d of them not a version bump)",
          branch, CFG.remote, tip:sub(1, 12), #cmp.commits, CFG.base, #cmp.work),
          { hint = "relua diagnose " .. r.ticket .. " compares it with " .. CFG.base ..
            " (an orphan that holds nothing else is deleted by relua recover; real work is kept and shown)" })
      end,
      revert = function(r)
        local repo <close> = checkout()
        local branch = r.state.BRANCH
        if not branch then return end
        take_back(r, "branch", branch, remote_refs(repo)["refs/heads/" .. branch], { r.state.BRANCH_SHA, r.state.BUMP_SHA },
          function() return repo:push_delete_branch(CFG.remote, branch) end)
        if repo:head().branch == branch then
          r:act("check out " .. CFG.base, function() errors.check(repo:checkout(CFG.base, { force = true })) end)
        end
        r:act("delete the local branch " .. branch, function() errors.check(repo:branch_delete(branch)) end)
        r.state.BRANCH_SHA, r.state.BUMP_SHA = nil, nil
      end,
    },
    {
      name = "version-bump",
      description = "set the version in the project file, commit it on the branch, push the branch",
      run = function(r)
        local repo <close> = checkout()
        local v, branch = need(r, "VERSION", "release-branch"), r.state.BRANCH
        local sha = r.state.BUMP_SHA
        if not sha then
          local tagged = remote_refs(repo)["refs/tags/" .. r.state.TAG]
          if tagged then
            -- a tag pushed by a run that died before recording: its commit is this bump when
            -- it is a version bump on this branch's base
            errors.check(repo:fetch(CFG.remote, { "refs/tags/" .. r.state.TAG .. ":refs/tags/" .. r.state.TAG }))
            local c = errors.check(repo:log(tagged, { limit = 1 }))[1]
            if c.parents[1] == r.state.BASE_SHA and is_bump(repo, c) then sha = tagged end
          end
        end
        if sha then
          on_branch(r, repo, branch, sha)
          r:log(string.format("the version commit %s (%s) is there: reused", sha:sub(1, 12), summary_of(repo, sha)))
        else
          on_branch(r, repo, branch, need(r, "BASE_SHA", "release-branch"))
          local vf = require "relua.versionfile"
          local paths = {}
          for _, f in ipairs(version_files()) do  -- every file read first: nothing half-written
            local okf, e = pcall(vf.get, fs.join(root(repo), f[1]), { format = f[2] })
            if not okf then
              errors.raise("version_file", string.format("bump: %s: %s", f[1], type(e) == "table" and tostring(e.message) or tostring(e)),
                { hint = "BRANCH_PR_PYTHON_DIR and BRANCH_PR_VERSION_FILES must name files that hold the version; nothing was changed" })
            end
          end
          for _, f in ipairs(version_files()) do
            vf.set(fs.join(root(repo), f[1]), v, { format = f[2] })
            paths[#paths + 1] = f[1]
          end
          if r.dry_run then r:log("(dry run) would commit " .. BUMP_SUBJECT .. v) return end
          sha = errors.check(repo:commit(BUMP_SUBJECT .. v, paths))
          r:log(string.format("%s%s: %s", BUMP_SUBJECT, v, sha:sub(1, 12)))
        end
        r.state.BUMP_SHA = sha
        if remote_refs(repo)["refs/heads/" .. branch] ~= sha then push_branch(r, repo, branch, "the version commit") end
      end,
      revert = function(r)
        r:log("the version commit goes with the branch (the branch's revert deletes it from " .. CFG.remote .. ")")
      end,
    },
    {
      name = "release-tag",
      description = "tag the version commit vX.Y.Z and push the tag (an existing one elsewhere: scenario B)",
      run = function(r)
        if dry(r, "tag it " .. tostring(r.state.TAG) .. " and push the tag") then return end
        local repo <close> = checkout()
        local sha, tag = need(r, "BUMP_SHA", "version-bump"), r.state.TAG
        local at = remote_refs(repo)["refs/tags/" .. tag]
        if at == sha then
          r:log(string.format("the tag %s is on %s at the version commit %s: continuing", tag, CFG.remote, sha:sub(1, 12)))
          return
        end
        if at then
          errors.check(repo:fetch(CFG.remote, { "refs/tags/" .. tag .. ":refs/tags/" .. tag }))
          errors.raise("tag_exists", string.format(
            "tag: the tag '%s' already exists on %s at %s (%s), not at this release's commit %s (%s)",
            tag, CFG.remote, at:sub(1, 12), summary_of(repo, at), sha:sub(1, 12), summary_of(repo, sha)),
            { hint = "relua diagnose " .. r.ticket .. " explains what to do; nothing was changed" })
        end
        local local_tag, lat = repo:tag_exists(tag)
        if local_tag and lat ~= sha then
          r:act(string.format("delete the local tag %s at %s (never pushed)", tag, tostring(lat):sub(1, 12)), function()
            errors.check(repo:tag_delete(tag))
          end)
        end
        r:act("tag " .. tag .. " and push it to " .. CFG.remote, function()
          errors.check(repo:tag(tag, sha, { message = "Release " .. r.state.VERSION }))
          errors.check(repo:push(CFG.remote, { "refs/tags/" .. tag }))
        end)
        r:log(string.format("tag %s at %s pushed to %s", tag, sha:sub(1, 12), CFG.remote))
      end,
      revert = function(r)
        local repo <close> = checkout()
        local tag = r.state.TAG
        if not tag then return end
        take_back(r, "tag", tag, remote_refs(repo)["refs/tags/" .. tag], { r.state.BUMP_SHA },
          function() return repo:push_delete_tag(CFG.remote, tag) end)
        if repo:tag_exists(tag) then r:act("delete the local tag " .. tag, function() errors.check(repo:tag_delete(tag)) end) end
      end,
    },
    {
      name = "dist",
      description = "build the wheel and the sdist of the tagged commit",
      run = function(r)
        if dry(r, "build the wheel and the sdist") then return end
        local repo <close> = checkout()
        local sha = need(r, "BUMP_SHA", "version-bump")
        on_branch(r, repo, r.state.BRANCH, sha)
        local d = dist_dir(repo)
        if fs.exists(d) then errors.check(fs.remove(d, { recursive = true })) end
        errors.check(fs.mkdir(d))
        local c = errors.check(repo:log(sha, { limit = 1 }))[1]
        r:sh(CFG.build, { cwd = fs.join(root(repo), CFG.python_dir), env = {
          SOURCE_DATE_EPOCH = tostring(math.tointeger(c.committer and c.committer.time or c.time)), BRANCH_PR_DIST = d } })
        if r.dry_run then return end
        local names = {}
        for i, p in ipairs(artifacts(repo, r.state.VERSION)) do names[i] = fs.basename(p) end
        r.state.ARTIFACTS = names
        r:log("built " .. table.concat(names, ", "))
      end,
      revert = function(r)
        local repo <close> = checkout()
        r:act("remove the build", function() fs.remove(dist_dir(repo), { recursive = true }) end)
      end,
    },
    {
      name = "pypi-upload",
      description = "publish the wheel and the sdist (identical files there: skipped; other bytes: bump the version)",
      irreversible = "published to PyPI",
      run = function(r)
        if dry(r, "publish the wheel and the sdist to " .. CFG.pypi_url) then return end
        local repo <close> = checkout()
        artifacts(repo, need(r, "VERSION", "release-branch"))
        require("relua.publish.targets").publish(r, { pypi_target(dist_dir(repo)) }, { title = "PyPI " .. r.state.TAG })
      end,
    },
    {
      name = "github-release",
      description = "the forge release of the tag (get-or-create)",
      run = function(r)
        if dry(r, "create the forge release of " .. tostring(r.state.TAG)) then return end
        local c = forge_or_raise("github-release")
        local rel, how = c:release(r.state.TAG, { name = r.state.TAG, body = notes_for(r.state.VERSION),
          target = need(r, "BUMP_SHA", "version-bump") })
        r.state.RELEASE_URL = rel.html_url
        r:log(string.format("forge release %s: %s (%s)", r.state.TAG, how, tostring(rel.html_url)))
      end,
    },
    {
      name = "pull-request",
      description = "the pull request of the release branch into main (find-or-open)",
      run = function(r)
        if dry(r, "open the pull request " .. tostring(r.state.BRANCH) .. " -> " .. CFG.base) then return end
        local repo <close> = checkout()
        local c = forge_or_raise("pull-request")
        local pr, how = c:pull_request(r.state.BRANCH, CFG.base, {
          title = string.format("Release %s to PyPI", r.state.VERSION), body = pr_body(r, project_name(repo)) })
        r.state.PR, r.state.PR_URL = pr.number, pr.html_url
        r:log(string.format("pull request #%s %s -> %s: %s (%s)", tostring(pr.number), r.state.BRANCH, CFG.base, how,
          tostring(pr.html_url)))
      end,
    },
    {
      name = "verify-release",
      description = "post-release verification: PyPI, the tag, the forge release, the pull request, the branch",
      run = function(r)
        if dry(r, "verify PyPI, the tag, the forge release, the pull request and the branch") then return end
        local v = need(r, "VERSION", "release-branch")
        local inv = PB.inventory(v)
        local problems = {}
        local function check(ok, good, bad)
          r:log((ok and "ok: " or "NOT OK: ") .. (ok and good or bad))
          if not ok then problems[#problems + 1] = bad end
        end
        check(inv.pypi == "identical", "PyPI has every file of " .. v .. ", identical to the build",
          "PyPI: " .. tostring(inv.pypi) .. " for " .. v)
        check(inv.tag == r.state.BUMP_SHA, "the tag " .. r.state.TAG .. " is at " .. tostring(r.state.BUMP_SHA):sub(1, 12),
          "the tag " .. r.state.TAG .. " is " .. (inv.tag and ("at " .. inv.tag:sub(1, 12)) or "not on " .. CFG.remote))
        local unread = "the forge could not be read for "
        check(inv.release and true or false, "the forge release " .. tostring(inv.release),
          (inv.release == false and unread or "no forge release of ") .. r.state.TAG)
        check(inv.pr and true or false, inv.pr and string.format("pull request #%s (%s)", tostring(inv.pr.number), tostring(inv.pr.state)) or "",
          (inv.pr == false and unread .. "the pull request from " or "no pull request from ") .. r.state.BRANCH .. " into " .. CFG.base)
        local merged = inv.pr and inv.pr.state == "closed"
        check(inv.branch ~= nil or merged, "the branch " .. r.state.BRANCH .. " is on " .. CFG.remote .. " (until the pull request is merged)",
          "the branch " .. r.state.BRANCH .. " is gone from " .. CFG.remote .. (inv.pr and " while its pull request is open" or ""))
        if #problems > 0 then
          errors.raise("verify", "verify-release: " .. table.concat(problems, "; "),
            { hint = "relua diagnose " .. r.ticket .. " works out what is missing; relua recover " .. r.ticket .. " does only that" })
        end
      end,
    },
  },
}

--- Takes back what this ticket made before anything was published from it: its tag and
--- its branch on the remote (only where they are at its commits), the local ones, the
--- checkout back on the base branch: the phases' own reverts, newest first. r: a phase's
--- `r` or a playbook's ctx.
function PB.drop(r)
  for _, name in ipairs({ "release-tag", "release-branch" }) do
    for _, ph in ipairs(RECIPE.phases) do
      if ph.name == name then ph.revert(r) end
    end
  end
end

return RECIPE
