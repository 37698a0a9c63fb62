--- relua.forge: the forge's REST API (GitHub; GitHub Enterprise; Gitea where it differs).
-- Releases get-or-create, release assets through relua.publish (verify-or-publish by
-- digest, never a second asset of the same name), pull requests find-or-open and close,
-- a commit's CI verdict (combined status + check runs, the failing checks named), ref
-- deletion, and the rate limits (primary: wait until the reset, bounded; secondary:
-- Retry-After). See doc/forge.md.
--   local forge = require "relua.forge"
--   local gh = forge.new({ repo = "acme/mylib" })     -- token: $GITHUB_TOKEN or $GH_TOKEN
--   local rel = gh:release("v1.2.0", { body = notes })
--   gh:assets(rel, { "dist/mylib-1.2.0.tar.gz" })
local http = require "relua.http"
local json = require "relua.json"
local err = require "relua.error"
local secret = require "relua.secret"
local log = require "relua.log"

local M = {}

--- Defaults (overridable per client): the longest wait for a primary rate limit's reset,
--- and the attempts of a request after a rate limit or a 5xx.
M.DEFAULTS = { max_rate_wait = 60, tries = 4, connect_timeout = 5, timeout = 60, stall_timeout = 15 }

local Client = {}
Client.__index = Client

local function sleep(s) if s > 0 then require("relua.proc").sleep(s) end end

-- An environment variable, nil when unset or empty (a CI may set one to "").
local function getenv(name)
  local v = os.getenv(name)
  if v ~= "" then return v end
end

--- A client. opts: repo ("owner/name"), token (default $GITHUB_TOKEN, then $GH_TOKEN,
--- declared secret), api (default $GITHUB_API_URL, else https://api.github.com; Gitea:
--- "https://git.example.org/api/v1"), kind ("github" or "gitea"; default: "gitea" when the
--- API URL ends in /api/v1), max_rate_wait, tries, timeout, connect_timeout, stall_timeout
--- (seconds without a byte moving), cainfo.
---@param opts table?
---@return table
function M.new(opts)
  opts = opts or {}
  local api = opts.api or getenv("GITHUB_API_URL") or "https://api.github.com"
  api = api:gsub("/+$", "")
  local token, source = opts.token, (opts.sources or {}).token or "opts.token"
  if token then secret.declare(token) end
  if not token then token, source = secret.env("GITHUB_TOKEN"), "$GITHUB_TOKEN" end
  if not token then token, source = secret.env("GH_TOKEN"), "$GH_TOKEN" end
  local c = setmetatable({
    api = api, repo = opts.repo or getenv("GITHUB_REPOSITORY"), token = token,
    source = token and source or "no token ($GITHUB_TOKEN and $GH_TOKEN are not set)",
    kind = opts.kind or (api:match("/api/v1$") and "gitea" or "github"),
    max_rate_wait = opts.max_rate_wait or M.DEFAULTS.max_rate_wait,
    tries = opts.tries or M.DEFAULTS.tries, timeout = opts.timeout or M.DEFAULTS.timeout,
    connect_timeout = opts.connect_timeout or M.DEFAULTS.connect_timeout, cainfo = opts.cainfo,
    stall_timeout = opts.stall_timeout or M.DEFAULTS.stall_timeout,
  }, Client)
  return c
end

-- The message of an error answer: GitHub's {message, errors = [{resource, code, field, message}]}.
local function describe(resp)
  local doc = resp.body and json.decode(resp.body)
  if type(doc) ~= "table" then return (resp.body or ""):sub(1, 200), nil end
  local parts = { tostring(doc.message or "") }
  for _, e in ipairs(type(doc.errors) == "table" and doc.errors or {}) do
    if type(e) == "table" then
      parts[#parts + 1] = e.message or table.concat({ e.resource or "", e.field or "", e.code or "" }, " ")
    end
  end
  return table.concat(parts, ": "), doc
end

local function has_error_code(doc, code)
  for _, e in ipairs(type(doc) == "table" and type(doc.errors) == "table" and doc.errors or {}) do
    if type(e) == "table" and e.code == code then return true end
  end
  return false
end

-- How long a rate-limited answer asks to wait: seconds, "primary" | "secondary"; nil if none.
local function rate_limited(resp)
  if resp.status ~= 403 and resp.status ~= 429 then return nil end
  local h = resp.headers
  if h["retry-after"] then return http.retry_after(h["retry-after"]) or 1, "secondary" end
  if h["x-ratelimit-remaining"] == "0" and h["x-ratelimit-reset"] then
    return math.max(0, (tonumber(h["x-ratelimit-reset"]) or 0) - os.time()) + 1, "primary"
  end
  return nil
end

--- One API call: the path under the API URL (or a full URL), the token, GitHub's media
--- type; rate limits and 5xx of idempotent calls waited out and retried. Returns the
--- response (any status) or nil, message, code.
---@param method string
---@param path string
---@param opts table?  json=, body_file=, form=, headers=, query=, output=, accept=, and the
---                     client's timeout, connect_timeout, stall_timeout for this call
function Client:call(method, path, opts)
  opts = opts or {}
  local url = path:match("^%a[%w+.-]*://") and path or (self.api .. path)
  local headers = { accept = opts.accept or "application/vnd.github+json" }
  if self.kind == "github" then headers["x-github-api-version"] = "2022-11-28" end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if self.token then
    headers.authorization = (self.kind == "gitea" and "token " or "Bearer ") .. self.token
  end
  local idempotent = method == "GET" or method == "HEAD" or method == "DELETE" or method == "PATCH"
  local waited = 0
  for attempt = 1, self.tries do
    local resp, msg, code = http.request{
      method = method, url = url, headers = headers, json = opts.json, body_file = opts.body_file,
      form = opts.form, query = opts.query, output = opts.output, content_type = opts.content_type,
      timeout = opts.timeout or self.timeout, connect_timeout = opts.connect_timeout or self.connect_timeout,
      stall_timeout = opts.stall_timeout or self.stall_timeout,
      cainfo = self.cainfo, progress = false, retry = false, label = opts.label,
      fresh = opts.fresh,
    }
    if not resp then
      if idempotent and attempt < self.tries and (code == "connect" or code == "timeout" or code == "network") then
        sleep(http.backoff(attempt))
      else
        return nil, msg, code
      end
    else
      local wait, which = rate_limited(resp)
      if wait then
        if waited + wait > self.max_rate_wait or attempt == self.tries then
          local reset = resp.headers["x-ratelimit-reset"]
          return nil, string.format("forge: %s %s: rate limited (%s)%s", method, http.redact(url), which,
            reset and (": the limit resets at " .. os.date("!%Y-%m-%d %H:%M:%S UTC", tonumber(reset))) or
            string.format(": retry after %d s", wait)), "rate_limited"
        end
        log.warn("forge: rate limited; waiting", { kind = which, seconds = wait, url = http.redact(url) })
        sleep(wait)
        waited = waited + wait
      elseif resp.status >= 500 and idempotent and attempt < self.tries then
        sleep(http.backoff(attempt))
      else
        return resp
      end
    end
  end
end

-- A call whose answer must be one of the ok statuses: the decoded JSON (or true), else
-- a structured error naming the call and GitHub's message.
local function expect(self, resp, msg, code, method, path, ok)
  if not resp then
    err.raise(code == "rate_limited" and "rate_limited" or ((code == "connect" or code == "resolve") and "unreachable" or (code or "http")),
      msg, { hint = code == "rate_limited" and "re-run after the reset" or ("check that " .. self.api .. " is reachable") })
  end
  for _, s in ipairs(ok) do
    if resp.status == s then
      if resp.body and resp.body ~= "" then return json.decode(resp.body) or true end
      return true
    end
  end
  local what = describe(resp)
  if resp.status == 401 or resp.status == 403 then
    err.raise("auth", string.format("forge: %s %s: HTTP %d: %s (token from %s)", method, path, resp.status, what, self.source),
      { hint = "check the token: it needs the repository's contents (and pull requests) permission", status = resp.status })
  end
  err.raise(resp.status == 404 and "not_found" or "forge", string.format("forge: %s %s: HTTP %d: %s", method, path, resp.status, what),
    { status = resp.status })
end

local function repo_of(self, repo)
  local r = repo or self.repo
  if not r then error("forge: no repository: pass opts.repo (\"owner/name\") or set GITHUB_REPOSITORY", 0) end
  return r
end

local function enc(s) return (http.urlencode(s):gsub("%%2F", "/")) end

--- The token's user (a read that needs the token: pre-flight's probe).
function Client:user()
  local resp, msg, code = self:call("GET", "/user")
  return expect(self, resp, msg, code, "GET", "/user", { 200 })
end

--- The release of a tag, drafts included (a draft is not visible by tag: the list is
--- read), or nil.
---@param tag string
---@param repo string?
function Client:find_release(tag, repo)
  repo = repo_of(self, repo)
  local path = "/repos/" .. repo .. "/releases/tags/" .. enc(tag)
  local resp, msg, code = self:call("GET", path)
  if resp and resp.status == 200 then return json.decode(resp.body) end
  if resp and resp.status ~= 404 then expect(self, resp, msg, code, "GET", path, { 200 }) end
  if not resp then expect(self, resp, msg, code, "GET", path, { 200 }) end
  for page = 1, 10 do
    local lpath = "/repos/" .. repo .. "/releases"
    local r2, m2, c2 = self:call("GET", lpath, { query = { per_page = 100, page = page } })
    local list = expect(self, r2, m2, c2, "GET", lpath, { 200 })
    for _, rel in ipairs(type(list) == "table" and list or {}) do
      if rel.tag_name == tag then return rel end
    end
    if type(list) ~= "table" or #list < 100 then break end
  end
  return nil
end

-- The notes of a new release: opts.body; else opts.notes() when a function; "" when
-- opts.notes is false; else the release-notes generator (relua.versioning.release_notes)
-- over the local repository opts.git (default "."), with opts.notes as its options when a
-- table: the Conventional Commits since the last release tag before this one.
local function notes_of(tag, opts)
  if opts.body ~= nil then return opts.body end
  local notes = opts.notes
  if notes == false then return "" end
  if type(notes) == "function" then return notes() end
  local nopts = {}
  for k, v in pairs(type(notes) == "table" and notes or {}) do nopts[k] = v end
  local text, res, code = require("relua.versioning").release_notes(opts.git or ".", tag, nopts)
  if not text then
    err.raise("notes", string.format("forge: the release notes of %s: %s", tag, res),
      { hint = "pass body = \"...\" (or notes = false for none), or run in the release's git repository (opts.git)" })
  end
  return text
end

--- Get-or-create the release of a tag: an existing one is reused (a draft is completed
--- unless opts.draft); GitHub's 422 already_exists (Gitea's 409) is resolved by looking.
--- opts: name, body (the notes), notes (a function -> string; a table of
--- relua.versioning.release_notes options; false: no notes), git (the local repository the
--- notes are generated from, default "."), target (commitish), draft, prerelease. Without
--- body or notes, a created release's notes are the generated notes of the commits since
--- the last release tag (`relua version notes --tag=TAG`).
---@param tag string
---@param opts table?
---@param repo string?
---@return table release, string status ("created" | "existing" | "completed")
function Client:release(tag, opts, repo)
  opts = opts or {}
  repo = repo_of(self, repo)
  local rel = self:find_release(tag, repo)
  if not rel then
    local body = notes_of(tag, opts)
    local path = "/repos/" .. repo .. "/releases"
    local resp, msg, code = self:call("POST", path, { json = {
      tag_name = tag, target_commitish = opts.target, name = opts.name or tag, body = body or "",
      draft = opts.draft or false, prerelease = opts.prerelease or false } })
    if resp and (resp.status == 409 or (resp.status == 422 and has_error_code(select(2, describe(resp)), "already_exists"))) then
      rel = self:find_release(tag, repo)  -- someone created it meanwhile: look, do not guess
      if not rel then
        err.raise("conflict", string.format("forge: POST %s: HTTP %d (already exists), yet no release has the tag %s", path, resp.status, tag))
      end
    else
      return expect(self, resp, msg, code, "POST", path, { 201 }), "created"
    end
  end
  if rel.draft and not opts.draft then
    local path = "/repos/" .. repo .. "/releases/" .. rel.id
    local resp, msg, code = self:call("PATCH", path, { json = { draft = false } })
    return expect(self, resp, msg, code, "PATCH", path, { 200 }), "completed"
  end
  return rel, "existing"
end

--- The assets of a release (fresh from the forge).
function Client:list_assets(rel, repo)
  repo = repo_of(self, repo)
  local path = "/repos/" .. repo .. "/releases/" .. rel.id .. "/assets"
  local resp, msg, code = self:call("GET", path, { query = { per_page = 100 } })
  return expect(self, resp, msg, code, "GET", path, { 200 })
end

--- Deletes a release asset by id.
function Client:delete_asset(id, repo)
  repo = repo_of(self, repo)
  local path = "/repos/" .. repo .. "/releases/assets/" .. id
  local resp, msg, code = self:call("DELETE", path)
  return expect(self, resp, msg, code, "DELETE", path, { 204, 404 })
end

-- The upload URL of a release: its upload_url template without {?name,label}.
local function upload_url(self, rel, repo)
  if rel.upload_url then return (rel.upload_url:gsub("{.*}$", "")) end
  return self.api .. "/repos/" .. repo .. "/releases/" .. rel.id .. "/assets"
end

-- The client and the release of an asset publish: opts.client / opts.release when given,
-- else made from opts (api, repo, token) and opts.tag (the release is created only when
-- something is to be sent: looking creates nothing).
local function client_of(opts)
  opts.client = opts.client or M.new(opts)
  return opts.client
end

local function release_of(opts, create)
  if opts.release then return opts.release end
  local c = client_of(opts)
  if not opts.tag then error("forge assets: opts.release or opts.tag is required", 0) end
  local rel = create and c:release(opts.tag, opts.release_opts) or c:find_release(opts.tag)
  opts.release = rel
  return rel
end

--- The adapter of relua.publish for a release's assets: opts.release (or opts.tag, and
--- opts.release_opts for its creation) and opts.client (or api, repo, token).
M.asset_adapter = {
  name = "forge",
  inspect = function(path)
    local fs = require "relua.fs"
    local st, msg, code = fs.stat(path)
    if not st then err.raise(code or "ENOENT", msg) end
    local sha = assert(fs.digest(path, "sha256"))
    return { path = path, name = fs.basename(path), size = st.size, sha256 = sha }
  end,
  label = function(a) return a.name end,
  where = function(opts)
    return "release " .. tostring(opts.tag or (opts.release and opts.release.tag_name)) .. " of "
      .. (opts.repo or (opts.client and opts.client.repo) or "(no repository)")
  end,
  look = function(arts, opts)
    local c = client_of(opts)
    local okr, rel = pcall(release_of, opts, false)
    local ok, list
    if okr and not rel then ok, list = true, {}  -- no release yet: nothing is there
    elseif okr then ok, list = pcall(c.list_assets, c, rel)
    else ok, list = false, rel end
    local out = {}
    for i, a in ipairs(arts) do
      if not ok then out[i] = { err = type(list) == "table" and list.message or tostring(list), code = type(list) == "table" and list.code or "forge" }
      else
        local found
        for _, x in ipairs(list) do
          if x.name == a.name and x.state ~= "starter" then found = x end
        end
        out[i] = { remote = found }
      end
    end
    return out
  end,
  -- The asset's digest field when the forge gives one, else download and hash.
  compare = function(a, remote, opts)
    local d = type(remote.digest) == "string" and remote.digest:match("^sha256:(%x+)$")
    if d then return d:lower() == a.sha256 and "same" or "different", d:lower() end
    local fs = require "relua.fs"
    local tmp = assert(fs.tmpdir("relua-forge-"))
    local out = fs.join(tmp, "dl")
    local resp = client_of(opts):call("GET", remote.url, { accept = "application/octet-stream", output = out })
    local sha = resp and resp.status == 200 and fs.digest(out, "sha256") or nil
    fs.remove(tmp, { recursive = true })
    if not sha then return "unknown" end
    return sha == a.sha256 and "same" or "different", sha
  end,
  credentials = function(opts)
    local c = client_of(opts)
    if not c.token then
      err.raise("auth", "forge: no token: $GITHUB_TOKEN and $GH_TOKEN are not set", { hint = "set GITHUB_TOKEN (or pass opts.token)" })
    end
    return c.token, c.source
  end,
  send = function(a, opts, _, t)
    local c, rel = client_of(opts), release_of(opts, true)
    -- An incomplete upload left behind ("starter") is removed first: never two of a name.
    local ok, list = pcall(c.list_assets, c, rel)
    if ok then
      for _, x in ipairs(list) do
        if x.name == a.name and x.state == "starter" then c:delete_asset(x.id) end
      end
    end
    local url = upload_url(c, rel, c.repo) .. "?name=" .. http.urlencode(a.name)
    if c.kind == "gitea" then
      return c:call("POST", url, { form = { { name = "attachment", file = a.path, filename = a.name,
        type = "application/octet-stream" } }, timeout = t.timeout, connect_timeout = t.connect_timeout,
        stall_timeout = t.stall_timeout, label = a.name, fresh = true })
    end
    return c:call("POST", url, { body_file = a.path, content_type = "application/octet-stream",
      timeout = t.timeout, connect_timeout = t.connect_timeout, stall_timeout = t.stall_timeout,
      label = a.name, fresh = true })
  end,
  exists = function(resp)
    if resp.status == 409 then return true end
    return resp.status == 422 and has_error_code(select(2, describe(resp)), "already_exists")
  end,
  immutable = function(a, remote, where)
    return string.format("forge: %s is already in %s with sha256 %s, but the local file has sha256 %s",
      a.name, where, tostring(remote), a.sha256),
      "a published release asset is not replaced: publish a new version", { remote_sha256 = remote, local_sha256 = a.sha256 }
  end,
  result = function(a, remote)
    return { name = a.name, sha256 = a.sha256, url = remote and remote.browser_download_url, digest = "sha256:" .. a.sha256 }
  end,
  log_fields = function(r) return { asset = r.name, sha256 = r.sha256 } end,
  probe = function(opts)
    local c = client_of(opts)
    local ok, e = pcall(c.user, c)
    if not ok then return false, type(e) == "table" and e.message or tostring(e) end
    return true
  end,
}

--- Verify-or-publish files as assets of a release (through relua.publish): results like
--- relua.publish.run's (published / skipped_existing; immutable raised before any upload).
---@param rel table     a release (from :release)
---@param paths string[]
---@param opts table?   relua.publish options
function Client:assets(rel, paths, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.client, o.release = self, rel
  local arts = {}
  for i, p in ipairs(paths) do arts[i] = M.asset_adapter.inspect(p) end
  return require("relua.publish").run(M.asset_adapter, arts, o)
end

--- Find-or-open a pull request from head (a branch) into base; the 422 "A pull request
--- already exists" (Gitea's 409) is resolved by finding it. Returns the PR and "opened" |
--- "existing".
---@param head string
---@param base string
---@param opts {title:string?, body:string?}?
---@param repo string?
function Client:pull_request(head, base, opts, repo)
  opts = opts or {}
  repo = repo_of(self, repo)
  local pr = self:find_pull_request(head, base, nil, repo)
  if pr then return pr, "existing" end
  local path = "/repos/" .. repo .. "/pulls"
  local resp, msg, code = self:call("POST", path, { json = { title = opts.title or head, head = head, base = base, body = opts.body or "" } })
  if resp and (resp.status == 409 or (resp.status == 422 and (describe(resp)):find("already exists", 1, true))) then
    pr = self:find_pull_request(head, base, nil, repo)
    if pr then return pr, "existing" end
  end
  return expect(self, resp, msg, code, "POST", path, { 201 }), "opened"
end

--- The pull request from head into base, or nil: the open one, or with state = "all" the
--- newest of any state ("closed" ones included, merged or not).
---@param head string
---@param base string
---@param state string?  "open" (default) | "closed" | "all"
---@param repo string?
function Client:find_pull_request(head, base, state, repo)
  repo = repo_of(self, repo)
  local owner = repo:match("^([^/]+)/")
  local path = "/repos/" .. repo .. "/pulls"
  local resp, msg, code = self:call("GET", path, { query = { head = owner .. ":" .. head, base = base, state = state or "open" } })
  local list = expect(self, resp, msg, code, "GET", path, { 200 })
  local found
  for _, p in ipairs(type(list) == "table" and list or {}) do
    if p.head and p.head.ref == head and (not found or (p.number or 0) > (found.number or 0)) then found = p end
  end
  return found
end

--- Closes a pull request (idempotent).
function Client:close_pull_request(number, repo)
  repo = repo_of(self, repo)
  local path = "/repos/" .. repo .. "/pulls/" .. number
  local resp, msg, code = self:call("PATCH", path, { json = { state = "closed" } })
  return expect(self, resp, msg, code, "PATCH", path, { 200 })
end

--- Deletes a branch or tag on the forge ("heads/release/1.2", "tags/v1.2"): true and
--- "deleted" or "not there".
function Client:delete_ref(ref, repo)
  repo = repo_of(self, repo)
  local path = "/repos/" .. repo .. "/git/refs/" .. enc(ref)
  local resp, msg, code = self:call("DELETE", path)
  if resp and resp.status == 422 and (describe(resp)):find("does not exist", 1, true) then return true, "not there" end
  if resp and resp.status == 404 then return true, "not there" end
  expect(self, resp, msg, code, "DELETE", path, { 204 })
  return true, "deleted"
end

--- A commit's CI as one verdict: the combined status and the check runs.
--- {state = "success" | "failure" | "pending", failing = {names}, pending = {names}, summary = "..."}.
--- No status and no check run at all is "pending" (nothing has reported yet).
---@param sha string
---@param repo string?
function Client:ci(sha, repo)
  repo = repo_of(self, repo)
  local spath = "/repos/" .. repo .. "/commits/" .. sha .. "/status"
  local r1, m1, c1 = self:call("GET", spath)
  local combined = expect(self, r1, m1, c1, "GET", spath, { 200 })
  local failing, pending, passed = {}, {}, 0
  for _, s in ipairs(combined.statuses or {}) do
    if s.state == "success" then passed = passed + 1
    elseif s.state == "pending" then pending[#pending + 1] = s.context
    else failing[#failing + 1] = s.context .. " (" .. tostring(s.state) .. ")" end
  end
  local cpath = "/repos/" .. repo .. "/commits/" .. sha .. "/check-runs"
  local r2, m2, c2 = self:call("GET", cpath, { query = { per_page = 100 } })
  if not (self.kind == "gitea" and r2 and r2.status == 404) then
    local runs = expect(self, r2, m2, c2, "GET", cpath, { 200 })
    local OK = { success = true, neutral = true, skipped = true }
    for _, run in ipairs(runs.check_runs or {}) do
      if run.status ~= "completed" then pending[#pending + 1] = run.name
      elseif OK[run.conclusion] then passed = passed + 1
      else failing[#failing + 1] = run.name .. " (" .. tostring(run.conclusion) .. ")" end
    end
  end
  local state
  if #failing > 0 then state = "failure"
  elseif #pending > 0 or passed == 0 then state = "pending"
  else state = "success" end
  local summary
  if state == "failure" then summary = "failing: " .. table.concat(failing, ", ")
  elseif state == "pending" then summary = #pending > 0 and ("not finished: " .. table.concat(pending, ", ")) or "no check has reported on " .. sha:sub(1, 12)
  else summary = passed .. " checks passed" end
  return { state = state, failing = failing, pending = pending, passed = passed, summary = summary }
end

return M
