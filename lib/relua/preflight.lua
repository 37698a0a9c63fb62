--- relua.preflight: checks that run before a release's first phase (doc/preflight.md).
-- A recipe lists them in `preflight = { ... }`; the engine runs them all before the first
-- phase of a run, prints one pass/fail list, and refuses the run (exit 2) if any fails:
-- fail closed, before anything is changed. A check is a table {name=, run=fn(ctx) -> ok,
-- detail} or a plain function (named "check N"); the factories below are the shipped ones.
-- ctx = {ticket=, recipe=, state= (the ticket's recorded state values: what an earlier run
-- of this ticket did), say=, log=}. A check passes what this ticket's own earlier run did
-- (its tag, its published files), so a re-run is not blocked by the first run.
local secret = require "relua.secret"
local err = require "relua.error"

local M = {}

local function check(name, fn) return { name = name, run = fn } end

local function open_repo(path)
  local git = require "relua.git"
  local repo, msg = git.open(path or ".")
  if not repo then return nil, msg end
  return repo
end

--- Runs the checks; returns all passed, and the results {name=, ok=, detail=}.
---@param checks table[]
---@param ctx table
---@return boolean
---@return table[]
function M.run(checks, ctx)
  local results, all = {}, true
  local flat = {}
  for _, c in ipairs(checks) do  -- a list inside the list (M.targets) counts as its checks
    if type(c) == "table" and c.run == nil and #c > 0 then
      for _, x in ipairs(c) do flat[#flat + 1] = x end
    else
      flat[#flat + 1] = c
    end
  end
  for i, c in ipairs(flat) do
    local name, fn = ("check " .. i), c
    if type(c) == "table" then name, fn = c.name or name, c.run end
    if type(fn) ~= "function" then
      err.usage(string.format("pre-flight check %s is not a function or {name=, run=}", name))
    end
    local ok, passed, detail = pcall(fn, ctx)
    if not ok then
      passed, detail = false, type(passed) == "table" and passed.message or tostring(passed)
    end
    results[i] = { name = name, ok = passed and true or false, detail = secret.mask(tostring(detail or "")) }
    if not passed then all = false end
  end
  return all, results
end

--- The pass/fail list, one line per check.
---@param results table[]
---@return string[]
function M.lines(results)
  local out = {}
  for i, r in ipairs(results) do
    out[i] = string.format("  [%s] %s%s", r.ok and "pass" or "FAIL", r.name,
      r.detail ~= "" and (": " .. r.detail) or "")
  end
  return out
end

--- Runs a recipe's pre-flight inside the release engine: prints the list, logs each result
--- (event=preflight), and raises `preflight` (exit 2) if any failed.
---@param checks table[]
---@param ctx table
function M.enforce(checks, ctx)
  local say = ctx.say or print
  say("pre-flight:")
  local ok, results = M.run(checks, ctx)
  for _, line in ipairs(M.lines(results)) do say(line) end
  if ctx.log then
    for _, r in ipairs(results) do
      ctx.log("preflight", { check = r.name, result = r.ok and "pass" or "fail", msg = r.detail ~= "" and r.detail or nil })
    end
  end
  if not ok then
    local failed = {}
    for _, r in ipairs(results) do if not r.ok then failed[#failed + 1] = r.name end end
    err.raise("preflight", string.format("pre-flight failed: %s; nothing was run", table.concat(failed, ", ")),
      { exit = 2, hint = "fix what the list above says, then run the release again" })
  end
  return results
end

-- ------------------------------------------------------------------ shipped checks

--- The named secrets are set (never shown), and their names can be repository secrets
--- (the GITHUB_ and GITEA_ prefixes are refused by the forges: a name is proposed).
---@param names string[]
---@param opts {project:string?}?
function M.secrets(names, opts)
  opts = opts or {}
  return check("secrets present", function()
    local missing, bad = {}, {}
    for _, n in ipairs(names) do
      local why = secret.reserved(n, opts.project)
      if why then bad[#bad + 1] = why end
      if not secret.env(n) then missing[#missing + 1] = n end
    end
    if #bad > 0 then return false, table.concat(bad, "; ") end
    if #missing > 0 then return false, "not set: " .. table.concat(missing, ", ") end
    return true, table.concat(names, ", ")
  end)
end

--- Every target of relua.publish.targets: its secrets (a primary's are required; a
--- fallback without them will be skipped), its registry reachable with those credentials
--- (a request that needs them), and the version not already there with other bytes.
---@param list table[]  target declarations
---@param opts {project:string?}?
---@return table[] checks
function M.targets(list, opts)
  opts = opts or {}
  local targets = require "relua.publish.targets"
  local out = {}
  out[#out + 1] = check("target secrets", function()
    local problems, notes = {}, {}
    for _, t in ipairs(targets.declare(list)) do
      for _, name in pairs(t.secrets) do
        local why = secret.reserved(name, opts.project)
        if why then problems[#problems + 1] = why end
      end
      local _, missing = targets.secrets_of(t)
      if #missing > 0 then
        if t.role == "primary" then
          problems[#problems + 1] = string.format("%s (primary): not set: %s", t.name, table.concat(missing, ", "))
        else
          notes[#notes + 1] = string.format("%s (fallback) will be skipped: not set: %s", t.name, table.concat(missing, ", "))
        end
      end
    end
    if #problems > 0 then return false, table.concat(problems, "; ") end
    return true, #notes > 0 and table.concat(notes, "; ") or "all set"
  end)
  out[#out + 1] = check("registries reachable with their credentials", function()
    local problems = {}
    for _, t in ipairs(targets.declare(list)) do
      local values, missing = targets.secrets_of(t)
      local adapter = targets.adapter_of(t)
      if #missing == 0 and adapter.probe then
        local ok, why = adapter.probe(targets.opts_of(t, values))
        if not ok and t.role == "primary" then problems[#problems + 1] = t.name .. ": " .. tostring(why) end
      end
    end
    if #problems > 0 then return false, table.concat(problems, "; ") end
    return true
  end)
  out[#out + 1] = check("version not burned", function()
    local problems = {}
    for _, t in ipairs(targets.declare(list)) do
      local l = targets.look(t)
      if l.checks then
        for i, c in ipairs(l.checks) do
          if c.state == "different" then
            local msg = l.adapter.immutable(l.arts[i], c.remote_digest, l.adapter.where(l.opts))
            problems[#problems + 1] = t.name .. ": " .. msg
          elseif c.state == "error" and t.role == "primary" then
            problems[#problems + 1] = t.name .. ": " .. tostring(c.message)
          end
        end
      elseif t.role == "primary" then
        problems[#problems + 1] = t.name .. ": " .. (type(l.err) == "table" and l.err.message or tostring(l.err))
      end
    end
    if #problems > 0 then return false, table.concat(problems, "; ") end
    return true
  end)
  return out
end

--- The working tree is clean (no changes, no merge or rebase in progress).
---@param path string?
function M.clean_tree(path)
  return check("working tree clean", function()
    local repo, msg = open_repo(path)
    if not repo then return false, msg end
    local ok, e = pcall(repo.assert_clean, repo)
    repo:close()
    if not ok then return false, type(e) == "table" and e.message or tostring(e) end
    return true
  end)
end

--- HEAD is on the release branch.
---@param branch string
---@param path string?
function M.on_branch(branch, path)
  return check("on branch " .. branch, function()
    local repo, msg = open_repo(path)
    if not repo then return false, msg end
    local head = repo:head()
    repo:close()
    if head.branch ~= branch then
      return false, string.format("HEAD is on %s, not %s", tostring(head.branch or ("a detached " .. head.id:sub(1, 12))), branch)
    end
    return true
  end)
end

--- No release branch is left over from an earlier release: no branch (local or
--- remote-tracking) matches glob but the ones allowed (the current release's own).
---@param glob string  e.g. "release/*"
---@param opts {allow:(string|fun(ctx):string)?, path:string?}?
function M.no_orphan_branch(glob, opts)
  opts = opts or {}
  return check("no orphan release branch", function(ctx)
    local repo, msg = open_repo(opts.path)
    if not repo then return false, msg end
    local list, m2 = repo:branches({ kind = "all", glob = glob })
    if not list then
      list = repo:branches({ kind = "local", glob = glob })
      if not list then repo:close(); return false, m2 end
    end
    repo:close()
    local allow = type(opts.allow) == "function" and opts.allow(ctx) or opts.allow
    local orphans = {}
    for _, b in ipairs(list) do
      local short = b.name:gsub("^[^/]+/", "", b.remote and 1 or 0)
      if short ~= allow and b.name ~= allow then orphans[#orphans + 1] = b.name end
    end
    if #orphans > 0 then
      return false, "left over: " .. table.concat(orphans, ", ") .. " (finish or delete them)"
    end
    return true
  end)
end

--- The release tag does not exist, or points at the commit being released (as a re-run
--- finds the tag its first run created). tag: a string or fn(ctx); opts.commit: the
--- expected commit (a string, fn(ctx), default HEAD).
---@param tag string|fun(ctx):string
---@param opts {commit:(string|fun(ctx):string)?, path:string?}?
function M.no_conflicting_tag(tag, opts)
  opts = opts or {}
  return check("no conflicting tag", function(ctx)
    local name = type(tag) == "function" and tag(ctx) or tag
    local repo, msg = open_repo(opts.path)
    if not repo then return false, msg end
    local exists, id = repo:tag_exists(name)
    local want = type(opts.commit) == "function" and opts.commit(ctx) or opts.commit or repo:head().id
    repo:close()
    if exists == nil then return false, id end
    if not exists then return true, name .. " is free" end
    if id == want then return true, name .. " already points at " .. want:sub(1, 12) .. " (this release)" end
    return false, string.format("%s exists at %s, not at %s: bump the version or delete the tag", name, id:sub(1, 12), want:sub(1, 12))
  end)
end

--- The commit's CI is green on the forge (combined status and check runs, as one verdict
--- naming the failing checks). An explicit override: the environment variable
--- opts.override_env (default RELUA_CI_OVERRIDE) holding the reason; it is logged with
--- who ($GITHUB_ACTOR or $USER) and why.
---@param opts {repo:string?, sha:(string|fun(ctx):string)?, override_env:string?, forge:table?}?
function M.ci_green(opts)
  opts = opts or {}
  return check("CI green on the forge", function(ctx)
    local var = opts.override_env or "RELUA_CI_OVERRIDE"
    local why = os.getenv(var)
    local forge = require "relua.forge"
    local client = opts.forge or forge.new(opts)
    local sha = type(opts.sha) == "function" and opts.sha(ctx) or opts.sha
    if not sha then
      local repo, msg = open_repo(opts.path)
      if not repo then return false, msg end
      sha = repo:head().id
      repo:close()
    end
    local okc, verdict = pcall(client.ci, client, sha, opts.repo)
    if okc and verdict.state == "success" then return true, verdict.summary .. " on " .. sha:sub(1, 12) end
    local detail = okc and verdict.summary or (type(verdict) == "table" and verdict.message or tostring(verdict))
    if why and why ~= "" then
      local who = os.getenv("GITHUB_ACTOR") or os.getenv("USER") or "unknown"
      if ctx.log then ctx.log("ci-override", { who = who, msg = why, sha = sha }) end
      require("relua.log").warn("CI check overridden", { who = who, why = why, sha = sha })
      return true, string.format("overridden by %s (%s): %s", who, why, tostring(detail))
    end
    return false, tostring(detail) .. " (to release anyway: set " .. var .. " to the reason)"
  end)
end

return M
