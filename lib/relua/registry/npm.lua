--- relua.registry.npm: an npm registry client with verify-or-publish.
-- Reads packuments (full and abbreviated), versions, dist-tags and a version's integrity;
-- publishes an `npm pack` tarball with the registry's PUT protocol (the document with
-- versions, dist-tags and the base64 tarball in _attachments), integrity and shasum
-- computed here. A published version is immutable: the same tarball already there is
-- success without a PUT; different bytes are an `immutable` error.
local http = require "relua.http"
local fs = require "relua.fs"
local json = require "relua.json"
local err = require "relua.error"
local archive = require "relua.core.archive"
local log = require "relua.log"
local publish = require "relua.publish"
local semver = require "relua.semver"

local M = {}

--- The default environment variable holding the registry token.
M.TOKEN_ENV = "NPM_TOKEN"
M.DEFAULT_REGISTRY = "https://registry.npmjs.org/"

local ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"

---@class relua.npm.Options
---@field registry string?   registry URL (default $npm_config_registry or https://registry.npmjs.org/)
---@field token string?      the auth token (default: $NPM_TOKEN, or the variable named by token_env, or an .npmrc line)
---@field token_env string?  the environment variable holding the token (default "NPM_TOKEN")
---@field npmrc string|string[]? .npmrc files to read `//host:port/:_authToken=` from (default ./.npmrc, ~/.npmrc)
---@field tag string?        dist-tag set by publish (default "latest")
---@field access string?     "public" or "restricted" (scoped packages)
---@field timeout number?    seconds per request
---@field cainfo string?     CA bundle for TLS
---@field retry table|false? retry policy of the reads (relua.http's `retry`)
---@field tries integer?     PUT attempts when the registry answers 5xx/429 or the connection fails (default 4)
---@field confirm_timeout number? seconds to wait for an accepted publish to show (default 10)

local function registry_of(opts)
  local r = opts.registry or os.getenv("npm_config_registry") or M.DEFAULT_REGISTRY
  return (r:gsub("/*$", "/"))
end

--- The registry a publish goes to: opts.registry, else $npm_config_registry, else npm's.
---@param opts {registry:string?}?
---@return string
function M.registry_url(opts) return registry_of(opts or {}) end

--- The path segment of a package name in registry URLs: "@scope/pkg" -> "@scope%2fpkg".
---@param name string
---@return string
function M.escape(name)
  return (name:gsub("/", "%%2f"))
end

-- "//host:port/path/" of a registry URL (npm's "nerf dart").
local function nerf(url)
  local rest = url:match("^%a[%w+.-]*:(//.*)$") or url
  rest = rest:gsub("^(//)[^/@]*@", "%1")  -- no credentials
  return (rest:gsub("/*$", "/"))
end

local function expand(value, file)
  local missing
  local v = value:gsub("%${([%w_]+)}", function(var)
    local x = os.getenv(var)
    if not x then missing = var; return "" end
    return x
  end)
  if missing then
    err.raise("auth", string.format("npm: %s uses ${%s}, which is not set", file, missing),
      { hint = "set " .. missing .. " to the registry token" })
  end
  return (v:gsub('^"(.*)"$', "%1"))
end

-- The token for a registry and where it came from (a description that names no secret).
local function find_token(opts, registry, required)
  if opts.token then return opts.token, (opts.sources or {}).token or "opts.token" end
  local var = opts.token_env or M.TOKEN_ENV
  local v = os.getenv(var)
  if v and v ~= "" then return v, "$" .. var end
  local files = opts.npmrc
  if type(files) == "string" then files = { files } end
  if not files then
    files = { ".npmrc" }
    local home = os.getenv("HOME")
    if home then files[#files + 1] = home .. "/.npmrc" end
  end
  local want = nerf(registry)
  for _, f in ipairs(files) do
    local text = fs.read(f)
    if text then
      local best, bestlen
      for line in text:gmatch("[^\r\n]+") do
        local key, value = line:match("^%s*(//[^=]-):_authToken%s*=%s*(.-)%s*$")
        if key then
          key = key:gsub("/*$", "/")
          if want:sub(1, #key) == key and (not bestlen or #key > bestlen) then best, bestlen = value, #key end
        end
      end
      if best then return expand(best, f), f .. " (" .. want .. ":_authToken)" end
    end
  end
  if required then
    err.raise("auth", string.format("npm: no token for %s: %s is not set and no .npmrc has a %s:_authToken line",
      registry, "$" .. var, want), { hint = "set " .. var .. " to an npm token" })
  end
end

local function get(url, opts, accept)
  local token = find_token(opts, registry_of(opts), false)
  return http.request{ url = url, timeout = opts.timeout, cainfo = opts.cainfo, progress = false,
                       bearer = token, headers = { accept = accept or "application/json" }, retry = opts.retry }
end

local function decode(resp, url)
  local doc, msg = json.decode(resp.body, url)
  if type(doc) ~= "table" then return nil, "npm: " .. (msg or (url .. ": not a JSON object")), "protocol" end
  return doc
end

local function fetch_doc(name, opts, accept)
  opts = opts or {}
  local url = registry_of(opts) .. M.escape(name)
  local resp, msg, code = get(url, opts, accept)
  if not resp then return nil, msg, code end
  if resp.status == 404 then
    return nil, string.format("npm: %s: not found on %s", name, http.redact(registry_of(opts))), "not_found"
  end
  if resp.status ~= 200 then
    return nil, string.format("npm: GET %s: HTTP %d", http.redact(url), resp.status), "http_status"
  end
  return decode(resp, http.redact(url))
end

--- The full packument (all versions' manifests, dist-tags, time).
--- A package the registry does not know: nil, message, "not_found".
---@param name string
---@param opts relua.npm.Options?
---@return table|nil doc
---@return string? message
---@return string? code
function M.packument(name, opts)
  return fetch_doc(name, opts, "application/json")
end

--- The abbreviated metadata (application/vnd.npm.install-v1+json): name, dist-tags, versions with dist.
---@param name string
---@param opts relua.npm.Options?
---@return table|nil doc
---@return string? message
---@return string? code
function M.abbreviated(name, opts)
  return fetch_doc(name, opts, ABBREVIATED)
end

--- Published versions, lowest first by SemVer precedence (empty when the package does not exist).
---@param name string
---@param opts relua.npm.Options?
---@return string[]|nil versions
---@return string? message
---@return string? code
function M.versions(name, opts)
  local doc, msg, code = M.abbreviated(name, opts)
  if not doc then
    if code == "not_found" then return {} end
    return nil, msg, code
  end
  local out = {}
  for v in pairs(doc.versions or {}) do out[#out + 1] = v end
  return semver.sort_loose(out)  -- SemVer precedence (a registry may hold older non-SemVer names)
end

--- The dist-tags of a package: {latest = "1.2.3", ...} (empty when the package does not exist).
---@param name string
---@param opts relua.npm.Options?
---@return table<string,string>|nil tags
---@return string? message
---@return string? code
function M.dist_tags(name, opts)
  local doc, msg, code = M.abbreviated(name, opts)
  if not doc then
    if code == "not_found" then return {} end
    return nil, msg, code
  end
  return doc["dist-tags"] or {}
end

--- A version's dist: {integrity = "sha512-...", shasum = "hex sha1", tarball = URL};
--- nil (no message) when the version is not published.
---@param name string
---@param version string
---@param opts relua.npm.Options?
---@return table|nil dist
---@return string? message
---@return string? code
function M.dist(name, version, opts)
  local doc, msg, code = M.abbreviated(name, opts)
  if not doc then
    if code == "not_found" then return nil end
    return nil, msg, code
  end
  local v = doc.versions and doc.versions[version]
  return v and v.dist or nil
end

-- ------------------------------------------------------------------ tarballs

---@class relua.npm.Tarball
---@field path string
---@field name string
---@field version string
---@field manifest table      package.json
---@field integrity string    "sha512-<base64>"
---@field shasum string       sha1 hex
---@field size integer

--- Reads an `npm pack` tarball's package.json and computes its integrity and shasum.
---@param path string
---@return relua.npm.Tarball|nil
---@return string? message
---@return string? code
function M.inspect(path)
  local st, msg, code = fs.stat(path)
  if not st then return nil, msg, code end
  local r
  r, msg, code = archive.open(path)
  if not r then return nil, "npm: " .. msg, code end
  local text
  while true do
    local e, m, c = r:next()
    if not e then
      if m then r:close(); return nil, "npm: " .. m, c end
      break
    end
    if e.type == "file" and e.name:match("^[^/]+/package%.json$") then
      text, m, c = r:read(16 * 1024 * 1024)
      if not text then r:close(); return nil, "npm: " .. m, c end
      break
    end
  end
  r:close()
  if not text then return nil, "npm: " .. path .. ": no package/package.json in the tarball (is it `npm pack` output?)", "bad_tarball" end
  local manifest, jmsg = json.decode(text, path .. ":package.json")
  if type(manifest) ~= "table" or type(manifest.name) ~= "string" or type(manifest.version) ~= "string" then
    return nil, "npm: " .. (jmsg or (path .. ": package.json without name or version")), "bad_tarball"
  end
  local dg, m1, c1 = fs.digests(path, { sha512 = "base64", sha1 = "hex" })  -- one read for both
  if not dg then return nil, m1, c1 end
  local sha512, sha1 = dg.sha512, dg.sha1
  return { path = path, name = manifest.name, version = manifest.version, manifest = manifest,
           integrity = "sha512-" .. sha512, shasum = sha1, size = st.size }
end

-- ------------------------------------------------------------------ publishing

local function sha512_of(integrity)
  for part in (integrity or ""):gmatch("%S+") do
    local v = part:match("^sha512%-(.+)$")
    if v then return v:gsub("%?.*$", "") end
  end
end

--- The dist of many name@version at once (http.all, one abbreviated packument per package):
--- a list, per item, of {dist = d} (published), {} (absent) or {err = message, code = code}.
---@param items {name:string, version:string}[]
---@param opts relua.npm.Options?
---@return table[]
function M.dists(items, opts)
  opts = opts or {}
  local registry = registry_of(opts)
  local token = find_token(opts, registry, false)
  local reqs, slot = {}, {}
  for _, it in ipairs(items) do
    if not slot[it.name] then
      reqs[#reqs + 1] = { url = registry .. M.escape(it.name), timeout = opts.timeout, cainfo = opts.cainfo,
        progress = false, bearer = token, headers = { accept = ABBREVIATED }, retry = opts.retry,
        connect_timeout = opts.connect_timeout or publish.DEFAULTS.connect_timeout,
        stall_timeout = opts.stall_timeout or publish.DEFAULTS.stall_timeout }
      slot[it.name] = #reqs
    end
  end
  local answers = http.all(reqs, { concurrency = opts.concurrency or 8, progress = false })
  local out = {}
  for i, it in ipairs(items) do
    local a = answers[slot[it.name]]
    local resp, msg, code = a[1], a[2], a[3]
    local url = http.redact(reqs[slot[it.name]].url)
    if not resp then out[i] = { err = msg, code = code }
    elseif resp.status == 404 then out[i] = {}
    elseif resp.status ~= 200 then out[i] = { err = string.format("npm: GET %s: HTTP %d", url, resp.status), code = "http_status" }
    else
      local doc, m2, c2 = decode(resp, url)
      if not doc then out[i] = { err = m2, code = c2 }
      else
        local v = doc.versions and doc.versions[it.version]
        out[i] = { dist = v and v.dist or nil }
      end
    end
  end
  return out
end

local function document(tb, registry, tag, access)
  local unscoped = tb.name:match("^@[^/]+/(.+)$") or tb.name
  local filename = unscoped .. "-" .. tb.version .. ".tgz"
  local manifest = {}
  for k, v in pairs(tb.manifest) do manifest[k] = v end
  manifest._id = tb.name .. "@" .. tb.version
  manifest.dist = {
    integrity = tb.integrity, shasum = tb.shasum,
    tarball = registry .. tb.name .. "/-/" .. filename,
  }
  local data = assert(fs.read(tb.path))
  local doc = {
    _id = tb.name, name = tb.name, description = tb.manifest.description,
    ["dist-tags"] = { [tag] = tb.version },
    versions = { [tb.version] = manifest },
    _attachments = { [tb.name .. "-" .. tb.version .. ".tgz"] = {
      content_type = "application/octet-stream", data = fs.base64(data), length = #data } },
  }
  if access then doc.access = access end
  return doc
end

local function auth_error(method, url, resp, source, var)
  local body = (resp.body or ""):sub(1, 200):gsub("%s+$", "")
  err.raise("auth", string.format("npm: %s %s: HTTP %d%s: the token from %s was refused",
    method, http.redact(url), resp.status, body ~= "" and " (" .. body .. ")" or "", source),
    { hint = "check the token in " .. source .. (source:sub(1, 1) ~= "$" and (" or set " .. var) or "") })
end

--- The adapter of relua.publish for npm registries (doc/publish.md).
M.adapter = {
  name = "npm",
  inspect = function(path)
    local tb, msg, code = M.inspect(path)
    if not tb then err.raise(code == "ENOENT" and "ENOENT" or "bad_tarball", msg) end
    return tb
  end,
  method = "PUT",
  failed_code = "publish_failed",
  refused = function(source) return "the token from " .. source .. " was refused" end,
  label = function(tb) return tb.name .. "@" .. tb.version end,
  where = function(opts) return http.redact(registry_of(opts)) end,
  look = function(tbs, opts)
    local out = M.dists(tbs, opts)
    for i, o in ipairs(out) do out[i] = { remote = o.dist, err = o.err, code = o.code } end
    return out
  end,
  compare = function(tb, dist)
    local remote = sha512_of(dist.integrity)
    if remote then
      return remote == tb.integrity:sub(8) and "same" or "different", dist.integrity
    elseif dist.shasum then
      return dist.shasum:lower() == tb.shasum and "same" or "different", "sha1 " .. dist.shasum
    end
    return "unknown"
  end,
  credentials = function(opts) return find_token(opts, registry_of(opts), true) end,
  send = function(tb, opts, token, t)
    local registry = registry_of(opts)
    local body = json.encode(document(tb, registry, opts.tag or "latest", opts.access))
    return http.request{ method = "PUT", url = registry .. M.escape(tb.name), body = body, bearer = token,
      content_type = "application/json", timeout = t.timeout, connect_timeout = t.connect_timeout,
      stall_timeout = t.stall_timeout, cainfo = opts.cainfo,
      label = tb.name .. "@" .. tb.version, progress = opts.progress,
      fresh = true }  -- never a keep-alive connection the registry may have dropped meanwhile
  end,
  exists = function(resp)
    local text = (resp.body or ""):lower()
    return resp.status == 409 or (resp.status == 403 and text:find("previously published", 1, true) ~= nil)
      or text:find("cannot publish over", 1, true) ~= nil
  end,
  immutable = function(tb, remote, where)
    return string.format("npm: %s@%s is already on %s with integrity %s, but the local tarball has integrity %s",
      tb.name, tb.version, where, remote or "(unknown)", tb.integrity),
      string.format("published versions are immutable: %s@%s is burned; bump the version and publish a new version",
        tb.name, tb.version),
      { remote_integrity = remote, local_integrity = tb.integrity }
  end,
  result = function(tb)
    return { name = tb.name, version = tb.version, integrity = tb.integrity, shasum = tb.shasum,
             digest = tb.integrity }
  end,
  -- Pre-flight: a read that needs the token (GET /-/whoami).
  probe = function(opts)
    local registry = registry_of(opts)
    local token, source = find_token(opts, registry, true)
    local url = registry .. "-/whoami"
    local resp, msg = http.request{ url = url, bearer = token, progress = false, retry = false, cainfo = opts.cainfo,
      connect_timeout = opts.connect_timeout or publish.DEFAULTS.connect_timeout, timeout = opts.timeout or 30 }
    if not resp then return false, msg end
    if resp.status == 401 or resp.status == 403 then
      return false, string.format("GET %s: HTTP %d: the token from %s was refused", http.redact(url), resp.status, source)
    end
    if not resp.ok then return false, string.format("GET %s: HTTP %d", http.redact(url), resp.status) end
    return true
  end,
  log_fields = function(r) return { package = r.name .. "@" .. r.version, integrity = r.integrity, tag = r.tag } end,
  auth_hint = function(source, _, opts)
    local var = opts and opts.token_env or M.TOKEN_ENV
    return "check the token in " .. source .. (source:sub(1, 1) ~= "$" and (" or set " .. var) or "")
  end,
}

---@class relua.npm.Result
---@field status "published"|"skipped_existing"
---@field name string
---@field version string
---@field integrity string
---@field shasum string
---@field tag string?   the dist-tag set by a publish

--- Verify-or-publish an `npm pack` tarball.
--- Absent: PUT, then read the registry back and confirm the integrity -> "published".
--- Present with the same integrity: nothing is sent -> "skipped_existing" (dist-tags untouched;
--- use npm.tag). Present with another integrity: raises `immutable`.
--- Other failures raise structured errors: `auth`, `unreachable`, `publish_failed`, `bad_tarball`.
---@param path string
---@param opts relua.npm.Options?
---@return relua.npm.Result
function M.publish(path, opts)
  if type(path) ~= "string" then error("npm.publish: path must be a string", 2) end
  opts = opts or {}
  local tb = M.adapter.inspect(path)
  local r = publish.run(M.adapter, { tb }, opts)[1]
  if r.status == "published" then r.tag = opts.tag or "latest" end
  return r
end

--- Points a dist-tag at a version; idempotent: {status = "unchanged"} when it already does,
--- {status = "set", previous = old} otherwise. Raises on failure (`auth`, `not_found`, ...).
---@param name string
---@param version string
---@param tag string
---@param opts relua.npm.Options?
---@return {status:"set"|"unchanged", previous:string?}
function M.tag(name, version, tag, opts)
  opts = opts or {}
  local registry = registry_of(opts)
  local tags, msg, code = M.dist_tags(name, opts)
  if not tags then err.raise((code == "connect" or code == "resolve") and "unreachable" or (code or "http"), msg) end
  if tags[tag] == version then return { status = "unchanged" } end
  local token, source = find_token(opts, registry, true)
  local url = registry .. "-/package/" .. M.escape(name) .. "/dist-tags/" .. http.urlencode(tag)
  local resp, m, c = http.request{ method = "PUT", url = url, body = json.encode(version), bearer = token,
    content_type = "application/json", timeout = opts.timeout, cainfo = opts.cainfo, progress = false,
    retry = { idempotent = true } }
  if not resp then err.raise((c == "connect" or c == "resolve") and "unreachable" or (c or "http"), m) end
  if resp.status == 401 or resp.status == 403 then auth_error("PUT", url, resp, source, opts.token_env or M.TOKEN_ENV) end
  if not resp.ok then
    err.raise(resp.status == 404 and "not_found" or "tag_failed", string.format("npm: PUT %s: HTTP %d: %s",
      http.redact(url), resp.status, (resp.body or ""):sub(1, 300):gsub("%s+$", "")))
  end
  log.info("npm: dist-tag set", { package = name, tag = tag, version = version, previous = tags[tag] })
  return { status = "set", previous = tags[tag] }
end

return M
