--- relua.git: the git facts and changes a release needs, through libgit2.
-- No part of relua runs the `git` program. The C core (relua.core.git) wraps libgit2 and
-- reports what happened; this module holds the policy: credentials from the environment,
-- ensure-semantics for tags, version sorting, push results checked ref by ref, progress on
-- a terminal, and refspec shorthands.
--
-- Failures of the world return `nil, message, code`; wrong argument types raise.
-- `repo:assert_clean()` raises a structured error (relua.error) since carrying on would be
-- wrong. See doc/git.md.
local core = require "relua.core.git"
local rerror = require "relua.error"
local semver = require "relua.semver"

local M = {}

--- The methods of every repository (C primitives plus the policy below).
---@class relua.git.Repository
local R = core.Repository
--- The C primitives this module wraps under the same names.
local C = {}
for k, v in pairs(R) do C[k] = v end

-- ------------------------------------------------------------------ stale lock files

-- libgit2 writes a ref (or the config, or the index) through PATH.lock: created with
-- O_EXCL, kept open while written, renamed over PATH. A process killed in between leaves
-- the .lock behind and every later write of that ref fails with "failed to lock file".
local LOCK_PATTERN = "failed to lock file '(.-%.lock)' for writing"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- What to do about a lock file named in a libgit2 message. A lock file is stale when no
--- process on this machine holds it open and it is older than this process (its writer
--- is gone: a relua run killed inside libgit2, say); a stale one in a repository on this
--- machine is removed (a warning says so) and true is returned, so the caller retries.
--- Otherwise returns false and a message naming the file and the command to remove it.
---@param path string the .lock file
---@param removable boolean the file is in a repository on this machine
---@return boolean removed
---@return string? message
function M.clear_stale_lock(path, removable)
  local info = core.lock_info(path)
  if not info then return true end                      -- gone meanwhile: retry
  if removable and info.holders == 0 and info.older then
    local ok, err = os.remove(path)
    if ok then
      require("relua.log").warn("git: removed the stale lock file " .. path
        .. " (no process holds it; a git writer was killed before it finished)")
      return true
    end
    return false, string.format("the stale git lock file %s cannot be removed (%s); remove it: rm %s",
      path, err, shell_quote(path))
  end
  if info.holders > 0 then
    return false, string.format("the git lock file %s is held by process %d (a git command is "
      .. "writing there): wait for it to finish, then run again", path, info.pid)
  end
  return false, string.format("the git lock file %s is in the way (left by a git command that was "
    .. "killed, or one still running elsewhere). If no git command is working on that repository, "
    .. "remove it: rm %s", path, shell_quote(path))
end

-- The lock file a failure names: in the message, or in a push's per-ref statuses.
local function lock_in(a, b)
  if a == nil and type(b) == "string" then return b:match(LOCK_PATTERN) end
  if type(a) == "table" then
    for _, r in ipairs(a) do
      local p = type(r) == "table" and type(r.status) == "string" and r.status:match(LOCK_PATTERN)
      if p then return p end
    end
  end
end

-- Is the remote (a name, a path or a URL) a repository on this machine?
local function local_remote(repo, remote)
  local url = remote
  if not remote:find("://", 1, true) and not remote:find("/", 1, true) then
    local info = C.remote and C.remote(repo, remote)
    url = type(info) == "table" and info.url or remote
  end
  return type(url) == "string" and (not url:find("://", 1, true) or url:find("^file://") ~= nil)
    and not url:find("^[%w.-]+@[%w.-]+:")               -- user@host:path is ssh
end

-- The primitives that write refs, the index or the config go through this: a stale lock
-- file is cleared and the write retried once; a live or foreign one is an ELOCKED failure
-- that names the file and says what to do.
local WRITERS = { "commit", "reset", "checkout", "branch_create", "branch_delete", "tag_create",
  "tag_delete", "remote_add", "fetch", "push" }
for _, name in ipairs(WRITERS) do
  local raw = R[name]
  local function guarded(repo, ...)
    local a, b, c = raw(repo, ...)
    local path = lock_in(a, b)
    if not path then return a, b, c end
    local removable = name ~= "push" or local_remote(repo, (...))
    local removed, why = M.clear_stale_lock(path, removable)
    if removed then return raw(repo, ...) end
    return nil, string.format("git.%s: %s", name, why), "ELOCKED"
  end
  R[name] = guarded
  C[name] = guarded
end

--- Environment variables read for HTTP(S) credentials.
M.ENV = {
  token = "RELUA_GIT_TOKEN",        -- a token, sent as the password
  username = "RELUA_GIT_USERNAME",  -- with RELUA_GIT_PASSWORD, or the user name for the token
  password = "RELUA_GIT_PASSWORD",
  timeout = "RELUA_GIT_TIMEOUT",    -- seconds of network silence before giving up (default 60)
}

--- How many times a credential is offered before giving up (libgit2 asks again after
--- every 401).
M.AUTH_ATTEMPTS = 3
--- Default seconds of network silence before a network operation gives up.
M.TIMEOUT = 60

-- ------------------------------------------------------------------ options

local function argerror(what, n, want, got)
  error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, what, want, type(got)), 3)
end

local NET_OPTS = { username = "string", password = "string", timeout = "number",
                   progress = "any", attempts = "number" }

-- Checks an options table against the allowed names (plus the network ones when net).
local function check_opts(what, opts, allowed, net)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(string.format("%s: options must be a table, got %s", what, type(opts)), 3) end
  for k, v in pairs(opts) do
    local want = allowed[k] or (net and NET_OPTS[k])
    if want == nil then error(string.format("%s: unknown option '%s'", what, tostring(k)), 3) end
    if want ~= "any" and type(v) ~= want then
      error(string.format("%s: option '%s' must be a %s, got %s", what, k, want, type(v)), 3)
    end
  end
  return opts
end

--- The credentials to offer, from the options or the environment, and where they came
--- from (named in authentication errors).
---@param opts table?
---@return {username:string?, password:string?, source:string}
function M.credentials(opts)
  opts = opts or {}
  local env = M.ENV
  if opts.password then
    return { username = opts.username, password = opts.password, source = "the password option" }
  end
  local user, pass, token = os.getenv(env.username), os.getenv(env.password), os.getenv(env.token)
  if pass and pass ~= "" then
    return { username = user, password = pass, source = env.username .. " and " .. env.password }
  end
  if token and token ~= "" then
    return { username = (user and user ~= "") and user or "x-access-token", password = token,
             source = env.token }
  end
  return { source = "no credentials: set " .. env.token .. ", or " .. env.username .. " and " .. env.password }
end

-- The options table the C core's network calls take.
local function netopts(opts, extra)
  local cred = M.credentials(opts)
  local timeout = opts.timeout
  if timeout == nil then timeout = tonumber(os.getenv(M.ENV.timeout) or "") or M.TIMEOUT end
  local progress = opts.progress
  if progress == nil then progress = "auto" end
  local t = { username = cred.username, password = cred.password, source = cred.source,
              attempts = opts.attempts or M.AUTH_ATTEMPTS, timeout = timeout, progress = progress }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- ------------------------------------------------------------------ versions

--- Compares two version-like names the way people read them (relua.semver.compare_loose):
--- SemVer precedence when both are a prefix and a SemVer version, otherwise numbers
--- numerically and a pre-release after '-' before its release ("v1.9" < "v1.10").
---@param a string
---@param b string
---@return integer -1, 0 or 1
M.compare_versions = semver.compare_loose

--- Sorts a list of version strings (or of tables with a `name` field) in place, ascending
--- (descending when desc), by compare_versions (relua.semver.sort_loose).
---@param list table
---@param desc boolean?
---@return table list
M.sort_versions = semver.sort_loose

-- A glob (*, ?, [..]) as an anchored Lua pattern, for branch names.
local function glob_pattern(glob)
  local p = glob:gsub("[%^%$%(%)%%%.%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return "^" .. p .. "$"
end

-- ------------------------------------------------------------------ opening

--- Opens the repository at path (a work tree or a .git/bare folder; no search upwards).
---@param path string
---@return relua.git.Repository|nil repo
---@return string? message
---@return string? code
function M.open(path)
  if type(path) ~= "string" then argerror("git.open", 1, "string", path) end
  return core.open(path)
end

--- Opens the repository holding path, searching upwards like git does.
---@param path string?  default "."
---@return relua.git.Repository|nil repo
---@return string? message
---@return string? code
function M.discover(path)
  path = path or "."
  if type(path) ~= "string" then argerror("git.discover", 1, "string", path) end
  return core.discover(path)
end

--- Creates a repository (a work tree with .git, or bare).
---@param path string
---@param opts {bare:boolean?}?
---@return relua.git.Repository|nil repo
---@return string? message
---@return string? code
function M.init(path, opts)
  if type(path) ~= "string" then argerror("git.init", 1, "string", path) end
  opts = check_opts("git.init", opts, { bare = "boolean" })
  return core.init(path, opts.bare)
end

--- Clones url into path. A failed clone leaves no folder behind.
---@param url string
---@param path string
---@param opts {bare:boolean?, branch:string?, timeout:number?, progress:any, username:string?, password:string?}?
---@return relua.git.Repository|nil repo
---@return string? message
---@return string? code
function M.clone(url, path, opts)
  if type(url) ~= "string" then argerror("git.clone", 1, "string", url) end
  if type(path) ~= "string" then argerror("git.clone", 2, "string", path) end
  opts = check_opts("git.clone", opts, { bare = "boolean", branch = "string" }, true)
  return core.clone(url, path, netopts(opts, { bare = opts.bare, branch = opts.branch }))
end

-- Folds "refs/tags/v1^{}" entries into their tag's `commit` field.
local function fold_peeled(list)
  local out, by = {}, {}
  for _, e in ipairs(list) do
    local base = e.name:match("^(.*)%^{}$")
    if base then
      if by[base] then by[base].commit = e.id end
    else
      out[#out + 1] = e
      by[e.name] = e
      if not e.name:match("^refs/tags/") then e.commit = e.id end
    end
  end
  for _, e in ipairs(out) do
    if e.commit == nil and e.name:match("^refs/tags/") then e.commit = e.id end
  end
  return out
end

--- Lists the references a remote URL advertises, without a local repository.
---@param url string
---@param opts table?  network options
---@return {name:string, id:string, commit:string?, symref:string?}[]|nil refs
---@return string? message
---@return string? code
function M.ls_remote(url, opts)
  if type(url) ~= "string" then argerror("git.ls_remote", 1, "string", url) end
  opts = check_opts("git.ls_remote", opts, {}, true)
  local list, err, code = core.ls_remote(url, netopts(opts))
  if not list then return nil, err, code end
  return fold_peeled(list)
end

--- Is name a valid full reference name (refs/heads/x, refs/tags/v1)?
---@param name string
---@return boolean
M.is_valid_ref = core.is_valid_ref

-- ------------------------------------------------------------------ repository: facts

--- Is the work tree dirty? Returns dirty, the sorted changed/untracked paths, and the
--- status entries ({path=, index=, worktree=, conflicted=}). relua's own folders (the
--- ledger under .relua or $RELUA_HOME, a folder store) never count.
---@param opts {untracked:boolean?}?  untracked files count (default true)
---@return boolean|nil dirty
---@return string[]|string paths_or_message
---@return table|string? entries_or_code
function R:dirty(opts)
  opts = check_opts("git.dirty", opts, { untracked = "boolean" })
  local untracked = opts.untracked
  if untracked == nil then untracked = true end
  local st, err, code = C.status(self, untracked)
  if not st then return nil, err, code end
  -- relua's own folders (the ledger, the phases' output) are never a change to release
  local own = {}
  local wd = C.workdir(self)
  if wd then
    wd = wd:gsub("/$", "")
    for _, f in ipairs(require("relua.store").own_folders()) do
      if f:sub(1, #wd + 1) == wd .. "/" then own[#own + 1] = f:sub(#wd + 2) .. "/" end
    end
  end
  local paths, kept = {}, {}
  for _, e in ipairs(st) do
    local mine = false
    for _, prefix in ipairs(own) do
      if e.path == prefix or e.path:sub(1, #prefix) == prefix then mine = true end
    end
    if not mine then
      paths[#paths + 1] = e.path
      kept[#kept + 1] = e
    end
  end
  st = kept
  table.sort(paths)
  return #paths > 0, paths, st
end

--- Raises a structured error unless the work tree is clean and no merge, rebase or
--- cherry-pick is in progress (the release pre-flight). Returns the repository.
---@param opts {untracked:boolean?}?
function R:assert_clean(opts)
  local state = C.state(self)
  if state ~= "none" then
    rerror.raise("git_state", string.format("a %s is in progress in %s", state, self:where()),
      { hint = "finish or abort it (git " .. state .. " --abort) before releasing" })
  end
  local dirty, paths, code = self:dirty(opts)
  if dirty == nil then rerror.raise(code or "git", paths) end
  if dirty then
    local shown = {}
    for i = 1, math.min(#paths, 20) do shown[i] = paths[i] end
    if #paths > 20 then shown[#shown + 1] = string.format("... (%d more)", #paths - 20) end
    rerror.raise("dirty", string.format("Working tree is dirty: %s: %s", self:where(),
      table.concat(shown, ", ")), { hint = "commit them, stash them (git stash -u) or add them to .gitignore, then run again "
        .. "(relua's own ledger folder is never counted)" })
  end
  return self
end

--- The folder that names this repository in messages (its work tree, else its git folder).
---@return string
function R:where()
  local p = C.workdir(self) or C.path(self)
  return (p:gsub("(.)/$", "%1"))
end

--- Commits of a range, newest first: "A..B", "REV", or a list of them ("^REV" excludes).
---@param spec string|string[]
---@param opts {limit:integer?, sort:string?, reverse:boolean?, first_parent:boolean?}?
---@return table[]|nil commits  {id=, parents=, summary=, message=, author=, committer=, time=}
---@return string? message
---@return string? code
function R:log(spec, opts)
  opts = check_opts("git.log", opts, { limit = "number", sort = "string", reverse = "boolean",
                                       first_parent = "boolean" })
  local it, err, code = C.walk(self, spec or "HEAD", opts)
  if not it then return nil, err, code end
  local out, limit = {}, opts.limit or math.huge
  for c in it do
    if #out >= limit then break end
    out[#out + 1] = c
  end
  return out
end

local C_changed = C.changed_paths

--- The changes between the trees of two commits: {{path=, status=, old_path=}}, sorted
--- by path. With merge_base=true, from their merge base to b (what b brings, like a...b).
---@param a string
---@param b string
---@param opts {merge_base:boolean?}?
function R:changes(a, b, opts)
  opts = check_opts("git.changes", opts, { merge_base = "boolean" })
  if opts.merge_base then
    local base, err, code = C.merge_base(self, a, b)
    if not base then return nil, err, code end
    a = base
  end
  local list, err, code = C_changed(self, a, b)
  if not list then return nil, err, code end
  table.sort(list, function(x, y) return x.path < y.path end)
  return list
end

--- Sorted names of the paths changed between two commits (both names of a rename).
---@param a string
---@param b string
---@param opts {merge_base:boolean?}?
---@return string[]|nil paths
---@return string? message
---@return string? code
function R:changed_paths(a, b, opts)
  local list, err, code = self:changes(a, b, opts)
  if not list then return nil, err, code end
  local seen, out = {}, {}
  for _, e in ipairs(list) do
    for _, p in ipairs({ e.old_path or false, e.path }) do
      if p and not seen[p] then seen[p] = true; out[#out + 1] = p end
    end
  end
  table.sort(out)
  return out
end

--- The id the reference had before its most recent reflog entry whose message contains
--- `text` (e.g. "pull": the commit before someone pulled). nil when there is none.
---@param ref string   "HEAD", "main", "refs/heads/main"
---@param text string  plain text searched in the reflog messages
---@return string|nil id
---@return table|string? entry_or_message
---@return string? code
function R:reflog_before(ref, text)
  local log, err, code = C.reflog(self, ref)
  if not log then return nil, err, code end
  for _, e in ipairs(log) do
    if e.message:find(text, 1, true) then return e.old, e end
  end
  return nil
end

-- ------------------------------------------------------------------ repository: changes

--- Commits paths (staged as they are in the work tree; a path gone from it is removed) on
--- HEAD, or the index as it is when paths is nil. Author: opts.author, else git's
--- GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL, else user.name/user.email from the git config.
--- Nothing to commit is `nil, message, "EEMPTY"` unless allow_empty.
---@param message string
---@param paths string[]?
---@param opts {author:{name:string,email:string}?, committer:{name:string,email:string}?, allow_empty:boolean?}?
---@return string|nil id
---@return string? message
---@return string? code
function R:commit(message, paths, opts)
  if type(message) ~= "string" then argerror("git.commit", 1, "string", message) end
  if paths ~= nil and type(paths) ~= "table" then argerror("git.commit", 2, "table", paths) end
  opts = check_opts("git.commit", opts, { author = "table", committer = "table", allow_empty = "boolean" })
  local author = opts.author
  if not author then
    local n, e = os.getenv("GIT_AUTHOR_NAME"), os.getenv("GIT_AUTHOR_EMAIL")
    if n and e and n ~= "" and e ~= "" then author = { name = n, email = e } end
  end
  local committer = opts.committer
  if not committer then
    local n, e = os.getenv("GIT_COMMITTER_NAME"), os.getenv("GIT_COMMITTER_EMAIL")
    if n and e and n ~= "" and e ~= "" then committer = { name = n, email = e } end
  end
  if not message:find("\n$") then message = message .. "\n" end
  return C.commit(self, message, paths, { author = author, committer = committer or author,
                                         allow_empty = opts.allow_empty })
end

--- Writes a commit object and nothing else (git commit-tree): no reference, index or work
--- tree changes, so it works in a bare repository; point a branch at it with
--- branch_create. opts.tree names a tree or a commit whose tree is taken (default: the
--- first parent's tree, or the empty tree). A signature may carry `time` (seconds since
--- the epoch, UTC); author and committer default as in commit.
---@param message string
---@param parents string[]   revisions (at most 8; empty for a root commit)
---@param opts {tree:string?, author:{name:string,email:string,time:integer?}?, committer:{name:string,email:string,time:integer?}?}?
---@return string|nil id
---@return string? message
---@return string? code
function R:commit_tree(message, parents, opts)
  if type(message) ~= "string" then argerror("git.commit_tree", 1, "string", message) end
  if type(parents) ~= "table" then argerror("git.commit_tree", 2, "table", parents) end
  opts = check_opts("git.commit_tree", opts, { tree = "string", author = "table", committer = "table" })
  if not message:find("\n$") then message = message .. "\n" end
  return C.commit_tree(self, message, parents, opts)
end

--- Switches HEAD and the work tree to a local branch. Local changes that the switch would
--- overwrite make it fail (ECONFLICT, naming the paths) unless force.
---@param branch string
---@param opts {force:boolean?}?
---@return true|nil ok
---@return string? message
---@return string? code
function R:checkout(branch, opts)
  if type(branch) ~= "string" then argerror("git.checkout", 1, "string", branch) end
  opts = check_opts("git.checkout", opts, { force = "boolean" })
  return C.checkout(self, branch, opts.force)
end

-- ------------------------------------------------------------------ branches

--- Branches, sorted by name: local by default; remote-tracking with kind="remote"
--- ("origin/main"); both with kind="all". glob filters the names (*, ?).
---@param opts {kind:string?, glob:string?}?
---@return {name:string, ref:string, id:string, remote:boolean, head:boolean}[]|nil
---@return string? message
---@return string? code
function R:branches(opts)
  opts = check_opts("git.branches", opts, { kind = "string", glob = "string" })
  local list, err, code = C.branches(self, opts.kind or "local")
  if not list then return nil, err, code end
  if opts.glob then
    local pat, out = glob_pattern(opts.glob), {}
    for _, b in ipairs(list) do
      if b.name:match(pat) then out[#out + 1] = b end
    end
    list = out
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- true, commit | false | nil, message, code: does the reference `full` exist?
local function ref_exists(repo, what, kind, name, full)
  if not core.is_valid_ref(full) then
    return nil, string.format("%s: invalid %s name '%s'", what, kind, name), "EINVALIDSPEC"
  end
  local r, err, code = C.ref(repo, full)
  if r then return true, r.commit or r.id end
  if code == "ENOTFOUND" then return false end
  return nil, err, code
end

--- Does the branch exist? A local branch, or with remote=true a remote-tracking one:
--- "origin/release/v0.2.0" names the remote; a bare "release/v0.2.0" is looked for on
--- every remote, origin first. Returns true and its commit id (and with remote=true the
--- remote's name), or false.
---@param name string
---@param opts {remote:boolean?}?
---@return boolean|nil exists
---@return string? id_or_message
---@return string? code_or_remote
function R:branch_exists(name, opts)
  if type(name) ~= "string" then argerror("git.branch_exists", 1, "string", name) end
  opts = check_opts("git.branch_exists", opts, { remote = "boolean" })
  if not opts.remote then
    return ref_exists(self, "git.branch_exists", "branch", name, "refs/heads/" .. name)
  end
  local remotes, err, code = self:remotes()
  if not remotes then return nil, err, code end
  table.sort(remotes, function(a, b)
    if (a == "origin") ~= (b == "origin") then return a == "origin" end
    return a < b
  end)
  for _, remote in ipairs(remotes) do
    if name:sub(1, #remote + 1) == remote .. "/" then  -- the name carries its remote
      local ok, id, c = ref_exists(self, "git.branch_exists", "branch", name, "refs/remotes/" .. name)
      if ok then return true, id, remote end
      if ok == nil then return nil, id, c end
    end
  end
  for _, remote in ipairs(remotes) do
    local ok, id, c = ref_exists(self, "git.branch_exists", "branch", name, "refs/remotes/" .. remote .. "/" .. name)
    if ok then return true, id, remote end
    if ok == nil then return nil, id, c end
  end
  return false
end

--- Creates a branch at rev (default HEAD); an existing one is EEXISTS unless force.
---@param name string
---@param rev string?
---@param opts {force:boolean?}?
---@return string|nil id
---@return string? message
---@return string? code
function R:branch_create(name, rev, opts)
  if type(name) ~= "string" then argerror("git.branch_create", 1, "string", name) end
  opts = check_opts("git.branch_create", opts, { force = "boolean" })
  return C.branch_create(self, name, rev or "HEAD", opts.force)
end

--- Deletes a local branch (or with remote=true a remote-tracking one). Returns true and
--- "deleted" or "not there" (deleting is idempotent); the current branch is refused.
---@param name string
---@param opts {remote:boolean?}?
---@return true|nil ok
---@return string message
---@return string? code
function R:branch_delete(name, opts)
  if type(name) ~= "string" then argerror("git.branch_delete", 1, "string", name) end
  opts = check_opts("git.branch_delete", opts, { remote = "boolean" })
  local ok, err, code = C.branch_delete(self, name, opts.remote)
  if ok == nil then return nil, err, code end
  return true, ok and "deleted" or "not there"
end

-- ------------------------------------------------------------------ tags

--- Tags matching glob (default "*", matched after refs/tags/), each {name=, ref=, id=,
--- commit=, annotated=}; sorted by name, or by version with sort="version" (desc=true for
--- newest first).
---@param glob string?
---@param opts {sort:string?, desc:boolean?}?
---@return table[]|nil tags
---@return string? message
---@return string? code
function R:tags(glob, opts)
  if glob ~= nil and type(glob) ~= "string" then argerror("git.tags", 1, "string", glob) end
  opts = check_opts("git.tags", opts, { sort = "string", desc = "boolean" })
  local list, err, code = C.tags(self, glob)
  if not list then return nil, err, code end
  if opts.sort == "version" then
    M.sort_versions(list, opts.desc)
  elseif opts.sort == nil or opts.sort == "name" then
    if opts.desc then table.sort(list, function(a, b) return a.name > b.name end)
    else
      local sorted = true  -- packed-refs is usually sorted already
      for i = 2, #list do
        if list[i - 1].name > list[i].name then sorted = false; break end
      end
      if not sorted then table.sort(list, function(a, b) return a.name < b.name end) end
    end
  else
    error(string.format("git.tags: sort must be \"name\" or \"version\", not \"%s\"", opts.sort), 2)
  end
  return list
end

--- Does the tag exist? Returns true and the commit it points at, or false.
---@param name string
---@return boolean|nil exists
---@return string? commit_or_message
---@return string? code
function R:tag_exists(name)
  if type(name) ~= "string" then argerror("git.tag_exists", 1, "string", name) end
  return ref_exists(self, "git.tag_exists", "tag", name, "refs/tags/" .. name)
end

--- The latest tag matching glob that is reachable from `from` (default HEAD): the tag on
--- the most recent commit met walking back from it (newest first by commit time); among
--- tags on the same commit, the highest version. Returns name, commit, distance (commits
--- between), or nil when no tag matches.
---@param glob string?
---@param opts {from:string?}?
---@return string|nil name
---@return string? commit_or_message
---@return integer|string? distance_or_code
function R:latest_tag(glob, opts)
  if glob ~= nil and type(glob) ~= "string" then argerror("git.latest_tag", 1, "string", glob) end
  opts = check_opts("git.latest_tag", opts, { from = "string" })
  local set, count, code0 = C.tag_commits(self, glob)
  if not set then return nil, count, code0 end
  if count == 0 then return nil end
  local id, dist, code = C.first_reachable(self, opts.from or "HEAD", set)
  if not id then
    if dist then return nil, dist, code end
    return nil
  end
  local names = set[id]
  if type(names) == "table" then
    M.sort_versions(names, true)
    return names[1], id, dist
  end
  return names, id, dist
end

--- Ensures the tag exists at rev (default HEAD): created when missing (annotated when
--- message is given); a tag already at the same commit is success with "already there";
--- one at another commit is an error naming both commits (EEXISTS), unless force moves it.
---@param name string
---@param rev string?
---@param opts {message:string?, tagger:{name:string,email:string}?, force:boolean?}?
---@return true|nil ok
---@return string message  "created", "already there", "moved" or the error
---@return string? code
function R:tag(name, rev, opts)
  if type(name) ~= "string" then argerror("git.tag", 1, "string", name) end
  opts = check_opts("git.tag", opts, { message = "string", tagger = "table", force = "boolean" })
  if not core.is_valid_ref("refs/tags/" .. name) then
    return nil, string.format("git.tag: invalid tag name '%s'", name), "EINVALIDSPEC"
  end
  rev = rev or "HEAD"
  local want, err, code = C.rev_parse(self, rev)
  if not want then return nil, string.format("git.tag %s: %s", name, err), code end
  local exists, have, code2 = self:tag_exists(name)
  if exists == nil then return nil, have, code2 end
  if exists and have == want then return true, "already there" end
  if exists and not opts.force then
    return nil, string.format("git.tag: tag '%s' already exists at %s, not at %s (%s): delete "
      .. "it first if it is wrong, or release another version", name, have, want, rev), "EEXISTS"
  end
  local tagger = opts.tagger
  if opts.message and not tagger then
    local n, e = os.getenv("GIT_COMMITTER_NAME"), os.getenv("GIT_COMMITTER_EMAIL")
    if n and e and n ~= "" and e ~= "" then tagger = { name = n, email = e } end
  end
  local ok, err3, code3 = C.tag_create(self, name, want, opts.message, { tagger = tagger }, opts.force)
  if not ok then return nil, err3, code3 end
  return true, exists and "moved" or "created"
end

--- Deletes a local tag. Returns true and "deleted" or "not there".
---@param name string
---@return true|nil ok
---@return string message
---@return string? code
function R:tag_delete(name)
  if type(name) ~= "string" then argerror("git.tag_delete", 1, "string", name) end
  local ok, err, code = C.tag_delete(self, name)
  if ok == nil then return nil, err, code end
  return true, ok and "deleted" or "not there"
end

-- ------------------------------------------------------------------ remotes

--- Fetches from a remote (a name or a URL): refspecs (default: the remote's), prune=true
--- removes remote-tracking branches gone from the remote, tags="all"|"none"|"auto".
---@param remote string
---@param refspecs string[]?
---@param opts {prune:boolean?, tags:string?, timeout:number?, progress:any, username:string?, password:string?}?
---@return true|nil ok
---@return string? message
---@return string? code
function R:fetch(remote, refspecs, opts)
  if type(remote) ~= "string" then argerror("git.fetch", 1, "string", remote) end
  if refspecs ~= nil and type(refspecs) ~= "table" then argerror("git.fetch", 2, "table", refspecs) end
  opts = check_opts("git.fetch", opts, { prune = "boolean", tags = "string" }, true)
  return C.fetch(self, remote, refspecs, netopts(opts, { prune = opts.prune, tags = opts.tags }))
end

--- The references a remote (name or URL) advertises: {{name=, id=, commit=, symref=}}.
---@param remote string
---@param opts table?  network options
function R:ls_remote(remote, opts)
  if type(remote) ~= "string" then argerror("git.ls_remote", 1, "string", remote) end
  opts = check_opts("git.ls_remote", opts, {}, true)
  local list, err, code = C.ls_remote(self, remote, netopts(opts))
  if not list then return nil, err, code end
  return fold_peeled(list)
end

-- A URL without its password, for messages: "https://bot:secret@host/x" -> "https://bot@host/x".
local function redact(url)
  return (url:gsub("^(%a[%w+.-]*://[^/@:]*):[^/@]*@", "%1@"))
end
M.redact = redact

-- "main" -> "refs/heads/main:refs/heads/main"; "v1" -> "refs/tags/v1:refs/tags/v1";
-- ":refs/heads/x" deletes; a leading '+' forces. Returns the spec or nil, message.
local function expand_refspec(repo, spec)
  local force = spec:sub(1, 1) == "+"
  local s = force and spec:sub(2) or spec
  local src, dst = s:match("^([^:]*):(.*)$")
  if not src then src, dst = s, nil end
  if src == "" then
    if not (dst and dst:match("^refs/")) then
      return nil, string.format("git.push: the deletion '%s' needs a full reference name "
        .. "(':refs/heads/NAME' or ':refs/tags/NAME')", spec)
    end
  else
    local r, err = C.ref(repo, src)
    if not r then return nil, string.format("git.push: no local reference '%s' in %s", src, repo:where()) end
    if r.symbolic then
      if not r.symbolic:match("^refs/") then return nil, err end
      src = r.symbolic  -- HEAD -> refs/heads/main
    else
      src = r.name
    end
    if dst == nil then dst = src
    elseif not dst:match("^refs/") then
      dst = (src:match("^refs/[^/]+/") or "refs/heads/") .. dst
    end
  end
  if not core.is_valid_ref(dst) then
    return nil, string.format("git.push: invalid reference name '%s'", dst)
  end
  return (force and "+" or "") .. src .. ":" .. dst
end

-- The server's side-band text, trimmed, as " (remote: ...)".
local function remote_said(text)
  text = (text or ""):gsub("\r", "\n"):gsub("%s+$", "")
  if text == "" then return "" end
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    line = line:gsub("^%s+", "")
    if line ~= "" then lines[#lines + 1] = line end
  end
  while #lines > 6 do table.remove(lines, 1) end
  return " (remote: " .. table.concat(lines, " / ") .. ")"
end

--- Pushes refspecs to a remote (name or URL): "main", "v0.2.0", "+main" (force),
--- "main:release/x", ":refs/heads/release/x" (delete), full refspecs. Every reference's
--- result is checked: one the server rejected (non-fast-forward, a hook declined) makes
--- the push fail with a message naming it and the server's reason (code "EREJECTED").
--- Returns true and the per-reference results {{ref=, status=nil}}.
---@param remote string
---@param refspecs string|string[]
---@param opts {timeout:number?, progress:any, username:string?, password:string?}?
---@return true|nil ok
---@return table|string results_or_message
---@return string? code
function R:push(remote, refspecs, opts)
  if type(remote) ~= "string" then argerror("git.push", 1, "string", remote) end
  if type(refspecs) == "string" then refspecs = { refspecs } end
  if type(refspecs) ~= "table" then argerror("git.push", 2, "table", refspecs) end
  opts = check_opts("git.push", opts, {}, true)
  local specs = {}
  for i, s in ipairs(refspecs) do
    if type(s) ~= "string" then error(string.format("git.push: refspec #%d must be a string", i), 2) end
    local full, err = expand_refspec(self, s)
    if not full then return nil, err, "EINVALIDSPEC" end
    specs[#specs + 1] = full
  end
  if #specs == 0 then error("git.push: no refspecs", 2) end
  local results, text, code = C.push(self, remote, specs, netopts(opts))
  if code == "ELOCKED" then
    -- a ref already at the wanted commit needs no lock: say so instead of failing
    local there = self:ls_remote(remote, opts.timeout and { timeout = opts.timeout } or nil)
    local have = {}
    for _, r in ipairs(there or {}) do have[r.name] = r.id end
    for _, spec in ipairs(specs) do
      local src, dst = spec:match("^%+?([^:]*):(.*)$")
      local want = src ~= "" and C.rev_parse(self, src)
      if not want or have[dst] ~= want then return nil, text, code end
    end
    results = {}
    for _, spec in ipairs(specs) do results[#results + 1] = { ref = spec:match(":(.*)$"), already = true } end
    return true, results
  end
  if not results then return nil, text, code end
  local rejected = {}
  for _, r in ipairs(results) do
    if r.status then rejected[#rejected + 1] = string.format("%s rejected by the server: %s", r.ref, r.status) end
  end
  if #rejected > 0 then
    return nil, string.format("git.push %s: %s%s", redact(remote), table.concat(rejected, "; "), remote_said(text)),
      "EREJECTED"
  end
  return true, results
end

--- Deletes a branch on a remote (push ":refs/heads/NAME") and its remote-tracking branch.
---@param remote string
---@param name string  e.g. "release/pypi-v0.2.0"
---@param opts table?  network options
function R:push_delete_branch(remote, name, opts)
  if type(name) ~= "string" then argerror("git.push_delete_branch", 2, "string", name) end
  local ok, err, code = self:push(remote, { ":refs/heads/" .. name }, opts)
  if not ok then return nil, err, code end
  C.branch_delete(self, remote .. "/" .. name, true)
  return true, err
end

--- Deletes a tag on a remote (push ":refs/tags/NAME").
---@param remote string
---@param name string
---@param opts table?  network options
function R:push_delete_tag(remote, name, opts)
  if type(name) ~= "string" then argerror("git.push_delete_tag", 2, "string", name) end
  return self:push(remote, { ":refs/tags/" .. name }, opts)
end

return M
