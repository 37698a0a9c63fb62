--- relua.versioning: the next version of a repository and its release notes, from the last
-- release tag and the Conventional Commits since (relua.conventional), through relua.git
-- (libgit2); and `relua version ...` on the command line. See doc/version.md.
--
-- The last release is the highest SemVer tag `<prefix><version>` (pre-releases skipped
-- unless asked for) whose commit is reachable from `from` (default HEAD): what
-- semantic-release calls the last release, and the same answer.
local git = require "relua.git"
local semver = require "relua.semver"
local conventional = require "relua.conventional"

local M = {}

local BUMPS = { patch = true, minor = true, major = true }

local function check_opts(what, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(string.format("%s: options must be a table, got %s", what, type(opts)), 3) end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if want == nil then error(string.format("%s: unknown option '%s'", what, tostring(k)), 3) end
    if type(v) ~= want then
      error(string.format("%s: option '%s' must be a %s, got %s", what, k, want, type(v)), 3)
    end
  end
  return opts
end

-- Runs fn(repo, opts) on an open repository, or on one opened from a path (and closed
-- after, even when fn raises).
local function with_repo(what, r, fn, opts)
  if type(r) ~= "string" and r ~= nil then return fn(r, opts) end
  local repo, err, code = git.discover(r or ".")
  if not repo then return nil, string.format("%s: %s", what, err), code end
  local ok, a, b, c = pcall(fn, repo, opts)
  repo:close()
  if not ok then error(a, 0) end
  return a, b, c
end

---@class relua.versioning.Release
---@field tag string       "v1.2.3"
---@field version string   "1.2.3"
---@field commit string    the tagged commit's id

--- The last release reachable from opts.from (default HEAD): the highest SemVer tag named
--- opts.prefix (default "v") + version, pre-releases skipped unless opts.prereleases.
--- Returns nil (no message) when there is none.
---@param repo userdata|string   an open repository or a path in one
---@param opts {prefix:string?, from:string?, prereleases:boolean?}?
---@return relua.versioning.Release|nil
---@return string? message
---@return string? code
function M.last_release(repo, opts)
  opts = check_opts("versioning.last_release", opts, { prefix = "string", from = "string", prereleases = "boolean" })
  return with_repo("versioning.last_release", repo, M._last_release, opts)
end

-- A candidate tag: its parsed version when name is prefix + a SemVer version, else nil.
-- The common case (prefix + MAJOR.MINOR.PATCH) is read without building a version.
local function candidate(name, prefix, prereleases)
  if name:sub(1, #prefix) ~= prefix then return false end
  local a, b, c = name:match("^(%d+)%.(%d+)%.(%d+)$", #prefix + 1)
  if a and #a < 19 and #b < 19 and #c < 19  -- no leading zero (48 is "0"): SemVer refuses them
      and not ((#a > 1 and a:byte() == 48) or (#b > 1 and b:byte() == 48) or (#c > 1 and c:byte() == 48)) then
    return nil, math.tointeger(a), math.tointeger(b), math.tointeger(c)
  end
  local v = semver.parse(name:sub(#prefix + 1))
  if not v or (#v.prerelease > 0 and not prereleases) then return false end
  return v, v.major, v.minor, v.patch
end

function M._last_release(repo, opts)
  local prefix = opts.prefix or "v"
  local from = opts.from or "HEAD"
  local head, err, code = repo:rev_parse(from)
  if not head then return nil, string.format("versioning: %s", err), code end
  -- the names alone: the leanest listing of thousands of tags (one pass over packed-refs)
  local names, err2, code2 = repo:tag_names(prefix .. "*")
  if not names then return nil, err2, code2 end
  -- The highest version, found in one pass without sorting or building versions; when it
  -- is not reachable (a tag on another branch), the next highest in another pass; after a
  -- few misses every candidate is sorted once and tried in turn.
  local excluded = {}  -- names known not to be a release reachable from `from`
  if opts.below then  -- only releases before this version (the notes of an existing tag)
    for _, name in ipairs(names) do
      local v = semver.parse(name:sub(#prefix + 1))
      if v and v:compare(opts.below) >= 0 then excluded[name] = true end
    end
  end
  local function highest()
    local best, bmaj, bmin, bpat, bv
    for _, name in ipairs(names) do
      local v, maj, min, pat
      if not excluded[name] then v, maj, min, pat = candidate(name, prefix, opts.prereleases) end
      if maj ~= nil then
        local c
        if bmaj == nil then c = 1
        elseif maj ~= bmaj then c = maj > bmaj and 1 or -1
        elseif min ~= bmin then c = min > bmin and 1 or -1
        elseif pat ~= bpat then c = pat > bpat and 1 or -1
        else
          c = semver.compare(v or semver.parse(name:sub(#prefix + 1)), bv or semver.parse(best:sub(#prefix + 1)))
          if c == 0 then c = name < best and 1 or -1 end
        end
        if c > 0 then best, bmaj, bmin, bpat, bv = name, maj, min, pat, v end
      end
    end
    return best
  end
  local known = {}  -- commit id -> reachable from head
  -- The tag's commit when it is reachable from head; nil, nil when not (or not a commit).
  local function reachable(name)
    local commit = repo:rev_parse("refs/tags/" .. name .. "^{commit}")
    if not commit then return nil end
    local reach = known[commit]
    if reach == nil then
      local e, c
      reach, e, c = repo:is_ancestor(commit, head)
      if reach == nil then return nil, e, c end
      known[commit] = reach
    end
    return reach and commit or nil
  end
  local function release(name, commit)
    return { tag = name, version = semver.parse(name:sub(#prefix + 1)):tostring(), commit = commit }
  end
  for _ = 1, 8 do
    local best = highest()
    if not best then return nil end
    local commit, e, c = reachable(best)
    if e then return nil, e, c end
    if commit then return release(best, commit) end
    excluded[best] = true
  end
  local cands = {}
  for _, name in ipairs(names) do
    local v = not excluded[name] and candidate(name, prefix, opts.prereleases)
    if v ~= false then
      v = v or semver.parse(name:sub(#prefix + 1))
      if v then cands[#cands + 1] = { tag = name, v = v } end
    end
  end
  table.sort(cands, function(x, y)
    local c = x.v:compare(y.v)
    if c ~= 0 then return c > 0 end
    return x.tag < y.tag
  end)
  for _, cand in ipairs(cands) do
    local commit, e, c = reachable(cand.tag)
    if e then return nil, e, c end
    if commit then return release(cand.tag, commit) end
  end
  return nil
end

---@class relua.versioning.Options
---@field prefix string?       tag prefix (default "v")
---@field from string?         the revision to release (default "HEAD")
---@field bump string?         "auto" (default: from the commits), "patch", "minor" or "major"
---@field pre_major boolean?   while the major is 0, a breaking change bumps the minor
---@field initial string?      the first version when there is no release tag (default "1.0.0")
---@field prereleases boolean? count pre-release tags as releases
---@field rules table?         type -> level (default relua.conventional.RULES)
---@field types table[]?       notes sections (default relua.conventional.TYPES)
---@field commit_url string?   link base of a commit in the notes (id appended)
---@field compare_url string?  link of the notes heading ({from}, {to} replaced by the tags)
---@field date string?         the notes heading's date (default today, UTC)

---@class relua.versioning.Next
---@field version string|nil   the next version ("1.3.0"), nil when nothing calls for a release
---@field tag string|nil       the next tag ("v1.3.0")
---@field bump string|nil      "major", "minor", "patch" (nil: nothing to release)
---@field last relua.versioning.Release|nil
---@field head string          the commit released
---@field count integer        commits since the last release
---@field commits relua.conventional.Commit[]  the conventional ones, newest first
---@field notes string|nil     Markdown release notes (nil when no release)

local NEXT_OPTS = { prefix = "string", from = "string", bump = "string", pre_major = "boolean",
                    initial = "string", prereleases = "boolean", rules = "table", types = "table",
                    commit_url = "string", compare_url = "string", date = "string" }

--- The next version: the last release (see last_release) bumped by the highest level the
--- Conventional Commits since call for (or by opts.bump), with release notes.
---@param repo userdata|string   an open repository or a path in one (default ".")
---@param opts relua.versioning.Options?
---@return relua.versioning.Next|nil
---@return string? message
---@return string? code
function M.next(repo, opts)
  opts = check_opts("versioning.next", opts, NEXT_OPTS)
  if opts.bump ~= nil and opts.bump ~= "auto" and not BUMPS[opts.bump] then
    error(string.format("versioning.next: bump must be \"auto\", \"patch\", \"minor\" or \"major\", not \"%s\"",
      opts.bump), 2)
  end
  if opts.initial ~= nil and not semver.valid(opts.initial) then
    error(string.format("versioning.next: initial '%s' is not a SemVer version", opts.initial), 2)
  end
  return with_repo("versioning.next", repo, M._next, opts)
end

function M._next(repo, opts)
  local prefix = opts.prefix or "v"
  local from = opts.from or "HEAD"
  local head, err, code = repo:rev_parse(from)
  if not head then return nil, string.format("versioning: %s", err), code end
  local last
  last, err, code = M._last_release(repo, opts)
  if err then return nil, err, code end
  collectgarbage()  -- the tag scan's tables are garbage now: reuse their memory for the walk
  local spec = last and { head, "^" .. last.commit } or head
  local it
  it, err, code = repo:walk(spec)
  if not it then return nil, err, code end
  local log = {}  -- only what the analysis reads: the walk's commit tables are garbage at once
  for c in it do log[#log + 1] = { id = c.id, message = c.message } end
  local analysis = conventional.analyze(log, { rules = opts.rules })
  local level = analysis.bump
  if opts.bump and opts.bump ~= "auto" then level = opts.bump end
  local version
  if level then
    if not last then
      version = opts.initial or "1.0.0"
    else
      local v = semver.parse(last.version)
      if opts.pre_major and v.major == 0 and level == "major" then level = "minor" end
      version = semver.bump(v, level):tostring()
    end
  end
  local res = { version = version, tag = version and (prefix .. version), bump = level, last = last,
                head = head, count = #log, commits = analysis.commits }
  if version then
    res.notes = conventional.notes(analysis.commits, {
      version = version, date = opts.date, commit_url = opts.commit_url, compare_url = opts.compare_url,
      from = last and last.tag, to = res.tag, types = opts.types,
    })
  end
  return res
end

local NOTES_OPTS = { prefix = "string", from = "string", prereleases = "boolean", rules = "table",
                     types = "table", commit_url = "string", compare_url = "string", date = "string" }

--- The release notes of the release `tag` (which need not exist yet): the Conventional
--- Commits since the last release before it (the highest release tag below the tag's
--- version reachable from the released commit) up to that commit: opts.from, else the tag's
--- commit when the tag exists, else HEAD. The tag is opts.prefix (default: what precedes
--- the version in the tag, e.g. "v") + a SemVer version. What relua.forge's releases use
--- when no body is given, and `relua version notes --tag=TAG`.
---@param repo userdata|string   an open repository or a path in one (default ".")
---@param tag string             "v1.3.0"
---@param opts relua.versioning.Options?  prefix, from, prereleases, rules, types, commit_url, compare_url, date
---@return string|nil notes      Markdown
---@return relua.versioning.Next|string  the analysis (version, tag, last, head, count, commits), or a message
---@return string? code
function M.release_notes(repo, tag, opts)
  if type(tag) ~= "string" then error("versioning.release_notes: tag must be a string, got " .. type(tag), 2) end
  opts = check_opts("versioning.release_notes", opts, NOTES_OPTS)
  local prefix = opts.prefix or tag:match("^(.-)%d+%.%d+%.%d+") or ""
  local version = tag:sub(1, #prefix) == prefix and semver.parse(tag:sub(#prefix + 1))
  if not version then
    return nil, string.format("versioning.release_notes: tag '%s' is not '%s' followed by a SemVer version",
      tag, prefix), "EINVAL"
  end
  return with_repo("versioning.release_notes", repo, function(r)
    local from = opts.from
    if not from then from = r:rev_parse("refs/tags/" .. tag .. "^{commit}") and ("refs/tags/" .. tag) or "HEAD" end
    local head, err, code = r:rev_parse(from .. "^{commit}")
    if not head then return nil, string.format("versioning: %s", err), code end
    local last
    last, err, code = M._last_release(r, { prefix = prefix, from = head, prereleases = opts.prereleases,
                                           below = version })
    if err then return nil, err, code end
    local it
    it, err, code = r:walk(last and { head, "^" .. last.commit } or head)
    if not it then return nil, err, code end
    local log = {}
    for c in it do log[#log + 1] = { id = c.id, message = c.message } end
    local analysis = conventional.analyze(log, { rules = opts.rules })
    local res = { version = version:tostring(), tag = tag, bump = analysis.bump, last = last, head = head,
                  count = #log, commits = analysis.commits }
    res.notes = conventional.notes(analysis.commits, {
      version = res.version, date = opts.date, commit_url = opts.commit_url, compare_url = opts.compare_url,
      from = last and last.tag, to = tag, types = opts.types,
    })
    return res.notes, res
  end)
end

-- ------------------------------------------------------------------ command line

local function usage(msg)
  require("relua.error").usage(msg)  -- the hint: the command's usage (relua.cli's help registry)
end

local function parse(args, allowed)
  return require("relua.release")._internal.parse_args(args, allowed)
end

local NEXT_ARGS = { repo = "value", from = "value", prefix = "value", bump = "value", ["pre-major"] = "flag",
                    initial = "value", ["commit-url"] = "value", ["compare-url"] = "value", json = "flag",
                    date = "value" }

local function compute(o)
  if o.bump and o.bump ~= "auto" and not BUMPS[o.bump] then
    usage(string.format("--bump must be auto, patch, minor or major, not '%s'", o.bump))
  end
  if o.initial and not semver.valid(o.initial) then
    usage(string.format("--initial: '%s' is not a SemVer version (e.g. 0.1.0)", o.initial))
  end
  local res, err, code = M.next(o.repo or ".", {
    prefix = o.prefix, from = o.from, bump = o.bump, pre_major = o["pre-major"] or nil,
    initial = o.initial, commit_url = o["commit-url"], compare_url = o["compare-url"], date = o.date,
  })
  if not res then
    require("relua.error").raise(code or "git", err,
      { exit = (code == "ENOTFOUND" or code == "ENOTAREPO") and 2 or 1 })
  end
  return res
end

local function none_message(res)
  local since = res.last and ("since " .. res.last.tag) or "in the history (no release tag yet)"
  return string.format("relua: no release: %d commit%s %s, none a fix, feature, performance change, "
    .. "revert or breaking change (use --bump=patch|minor|major to release anyway)",
    res.count, res.count == 1 and "" or "s", since)
end

local function as_json(res)
  local json = require "relua.json"
  local changes = {}
  for i, c in ipairs(res.commits) do
    changes[i] = { id = c.id, type = c.type, scope = c.scope, subject = c.subject, breaking = c.breaking,
                   notes = c.breaking and c.notes or nil }
  end
  return json.encode({
    version = res.version or json.null, tag = res.tag or json.null, bump = res.bump or json.null,
    last = res.last or json.null, head = res.head, commits = res.count,
    changes = json.array(changes), notes = res.notes or json.null,
  })
end

local sub = {}

function sub.next(args)
  local o = parse(args, NEXT_ARGS)
  if #o.positional > 0 then usage("relua version next takes no arguments, got '" .. o.positional[1] .. "'") end
  local res = compute(o)
  if o.json then print(as_json(res)) return 0 end
  if not res.version then
    io.stderr:write(none_message(res), "\n")
    return 0
  end
  print(res.version)
  return 0
end

local NOTES_ARGS = setmetatable({ tag = "value" }, { __index = NEXT_ARGS })

function sub.notes(args)
  local o = parse(args, NOTES_ARGS)
  if #o.positional > 0 then usage("relua version notes takes no arguments, got '" .. o.positional[1] .. "'") end
  if o.tag then
    if o.bump or o.initial or o["pre-major"] then
      usage("relua version notes --tag: the version is the tag's; --bump, --initial and --pre-major do not apply")
    end
    local notes, res, code = M.release_notes(o.repo or ".", o.tag, {
      prefix = o.prefix, from = o.from, commit_url = o["commit-url"], compare_url = o["compare-url"], date = o.date })
    if not notes then
      if code == "EINVAL" then usage(res) end
      require("relua.error").raise(code or "git", res,
        { exit = (code == "ENOTFOUND" or code == "ENOTAREPO") and 2 or 1 })
    end
    io.stdout:write(notes)
    return 0
  end
  local res = compute(o)
  if not res.version then
    io.stderr:write(none_message(res), "\n")
    return 0
  end
  io.stdout:write(res.notes)
  return 0
end

function sub.last(args)
  local o = parse(args, { repo = "value", from = "value", prefix = "value", json = "flag" })
  local last, err, code = M.last_release(o.repo or ".", { prefix = o.prefix, from = o.from })
  if err then require("relua.error").raise(code or "git", err, { exit = 2 }) end
  if o.json then
    print(require("relua.json").encode(last or require("relua.json").null))
  elseif last then
    print(last.tag)
  else
    io.stderr:write("relua: no release tag reachable from ", o.from or "HEAD", "\n")
    return 1
  end
  return 0
end

function sub.set(args)
  local o = parse(args, {})
  local version = o.positional[1]
  if not version or #o.positional < 2 then usage("relua version set needs a version and at least one file") end
  local vf = require "relua.versionfile"
  for i = 2, #o.positional do
    local path = o.positional[i]
    local old = vf.set(path, version)
    print(string.format("%s: %s -> %s", path, old, version))
  end
  return 0
end

function sub.get(args)
  local o = parse(args, {})
  if #o.positional ~= 1 then usage("relua version get needs one file") end
  local v, where = require("relua.versionfile").get(o.positional[1])
  if not v then require("relua.error").raise("no_version", where, { exit = 2 }) end
  print(v)
  return 0
end

function sub.bump(args)
  local o = parse(args, { preid = "value", build = "value" })
  local v, kind = o.positional[1], o.positional[2]
  if not v or not kind then usage("relua version bump needs a version and a kind (major, minor, patch, ...)") end
  local parsed, err = semver.parse(v)
  if not parsed then usage(err) end
  local ok, res = pcall(semver.bump, parsed, kind, { prerelease = o.preid, build = o.build })
  if not ok then usage((tostring(res):gsub("^[^:]*:%d+: ", ""))) end
  print(res:tostring())
  return 0
end

function sub.compare(args)
  local o = parse(args, { pep440 = "flag" })
  local a, b = o.positional[1], o.positional[2]
  if not a or not b then usage("relua version compare needs two versions") end
  local mod = o.pep440 and require("relua.pep440") or semver
  for _, s in ipairs({ a, b }) do
    local ok, err = mod.parse(s)
    if not ok then usage(err) end
  end
  print(mod.compare(a, b))
  return 0
end

--- `relua version SUBCOMMAND ...` (relua.cli registers each as a command with its help);
--- sub nil: `relua version` alone, relua's own version.
---@param name string?  "next", "notes", "last", "set", "get", "bump", "compare"
---@return integer exit status
function M.run(name, ...)
  local args = { ... }
  if name == nil then
    if args[1] ~= nil then
      require("relua.error").usage(string.format("unknown command: relua version %s", args[1]),
        "relua version next|notes|last|set|get|bump|compare; relua help version next")
    end
    print(require("relua.version").describe())
    return 0
  end
  return sub[name](args)
end

return M
