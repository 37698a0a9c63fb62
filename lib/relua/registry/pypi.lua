--- relua.registry.pypi: a PyPI-compatible index client with verify-or-publish.
-- Reads what an index holds through the simple API (PEP 691 JSON or PEP 503 HTML, chosen
-- by content negotiation) or the JSON API (/pypi/NAME/json), and uploads through the
-- legacy upload API (`:action=file_upload`). A published file is immutable: publishing a
-- file that is already there with the same sha256 is success without an upload; one with
-- different bytes is an `immutable` error that says to publish a new version.
local http = require "relua.http"
local fs = require "relua.fs"
local json = require "relua.json"
local err = require "relua.error"
local archive = require "relua.core.archive"
local publish = require "relua.publish"
local pep440 = require "relua.pep440"

local M = {}

local JSON_V1 = "application/vnd.pypi.simple.v1+json"
local ACCEPT = JSON_V1 .. ", application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"

--- The default environment variable holding the upload password or API token.
M.PASSWORD_ENV = "PYPI_TOKEN"

--- PEP 503 normalisation of a project name: runs of `-`, `_`, `.` become `-`, lower case.
---@param name string
---@return string
function M.normalize(name)
  return (name:gsub("[-_.]+", "-"):lower())
end

-- ------------------------------------------------------------------ distributions

local function parse_metadata(text)
  -- RFC 822 style headers up to the first blank line; continuation lines start with space.
  local fields, last = {}, nil
  local at = 1
  while at <= #text do
    local nl = text:find("\n", at, true) or #text + 1
    local line = text:sub(at, text:byte(nl - 1) == 13 and nl - 2 or nl - 1)
    at = nl + 1
    if line == "" then break end
    if line:match("^[ \t]") and last then
      fields[last] = fields[last] .. "\n" .. line:gsub("^[ \t]+", "")
    else
      local k, v = line:match("^([%w%-]+):%s?(.*)$")
      if k then
        last = k:lower()
        if fields[last] == nil then fields[last] = v end
      end
    end
  end
  return fields
end

-- Files up to this size are read once, into memory, for their metadata and digests;
-- larger ones are streamed (a 1 GB upload reads its file once for all its digests).
local IN_MEMORY = 8 * 1024 * 1024

-- The first file entry whose name passes match, of the reader that open(...) gives.
local function read_member(match, open, ...)
  local r, msg, code = open(...)
  if not r then return nil, msg, code end
  local found
  while true do
    local e, m, c = r:next()
    if not e then
      if m then r:close(); return nil, m, c end
      break
    end
    if e.type == "file" and match(e.name) then
      found, m, c = r:read(4 * 1024 * 1024)
      if not found then r:close(); return nil, m, c end
      break
    end
  end
  r:close()
  return found
end

---@class relua.pypi.Dist
---@field path string
---@field filename string
---@field name string             the project name from the metadata
---@field version string
---@field filetype "bdist_wheel"|"sdist"
---@field pyversion string        the wheel's python tag, "source" for an sdist
---@field metadata_version string
---@field summary string?
---@field requires_python string?
---@field sha256 string           hex
---@field md5 string              hex
---@field size integer

--- Reads a wheel's `*.dist-info/METADATA` or an sdist's `PKG-INFO` and digests the file.
---@param path string a .whl, .tar.gz or .zip distribution
---@return relua.pypi.Dist|nil dist
---@return string? message
---@return string? code "ENOENT", "bad_dist", ...
function M.inspect(path)
  local filename = fs.basename(path)
  local filetype, pyversion, member, kind
  if filename:sub(-4) == ".whl" then
    local parts = {}
    for p in filename:sub(1, -5):gmatch("[^-]+") do parts[#parts + 1] = p end
    if #parts ~= 5 and #parts ~= 6 then
      return nil, "pypi: " .. path .. ": not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)", "bad_dist"
    end
    filetype, pyversion, kind = "bdist_wheel", parts[#parts - 2], "zip"
    member = function(n) return n:match("^[^/]+%.dist%-info/METADATA$") ~= nil end
  elseif filename:sub(-7) == ".tar.gz" or filename:sub(-4) == ".zip" then
    filetype, pyversion, kind = "sdist", "source", filename:sub(-4) == ".zip" and "zip" or "tar"
    member = function(n) return n:match("^[^/]+/PKG%-INFO$") ~= nil end
  else
    return nil, "pypi: " .. path .. ": not a wheel (.whl) or an sdist (.tar.gz, .zip)", "bad_dist"
  end
  local st, msg, code = fs.stat(path)
  if not st then return nil, msg, code end
  local text, data, size
  if st.size <= IN_MEMORY then
    data, msg, code = fs.read(path)
    if not data then return nil, msg, code end
    size = #data
    text, msg, code = read_member(member, archive.open_memory, data, path, kind)
  else
    size = st.size
    text, msg, code = read_member(member, archive.open, path, kind)
  end
  if not text then
    if msg then return nil, "pypi: " .. path .. ": " .. msg, code end
    return nil, string.format("pypi: %s: no %s in the distribution", path,
      filetype == "sdist" and "PKG-INFO" or "*.dist-info/METADATA"), "bad_dist"
  end
  local f = parse_metadata(text)
  if not f.name or not f.version then
    return nil, "pypi: " .. path .. ": metadata without Name or Version", "bad_dist"
  end
  local sha256, md5
  if data then
    sha256, md5 = fs.hash(data, "sha256"), fs.hash(data, "md5")
  else
    local dg, m2, c2 = fs.digests(path, { sha256 = "hex", md5 = "hex" })  -- one read for both
    if not dg then return nil, m2, c2 end
    sha256, md5 = dg.sha256, dg.md5
  end
  return {
    path = path, filename = filename, name = f.name, version = f.version,
    filetype = filetype, pyversion = pyversion,
    metadata_version = f["metadata-version"] or "2.1",
    summary = f.summary, requires_python = f["requires-python"],
    sha256 = sha256, md5 = md5, size = size,
  }
end

-- ------------------------------------------------------------------ reading an index

local function opt_index(opts)
  if opts.index then return (opts.index:gsub("/*$", "/")) end
  local url = opts.url or error("pypi: opts.url (the upload URL) or opts.index (the simple index URL) is required", 3)
  if url:match("^https://upload%.pypi%.org/legacy/?$") then return "https://pypi.org/simple/" end
  if url:match("^https://test%.pypi%.org/legacy/?$") then return "https://test.pypi.org/simple/" end
  local base = url:gsub("/legacy/?$", "/")
  return (base:gsub("/*$", "/")) .. "simple/"
end

local function json_base(index)
  -- http://host/simple/ -> http://host/pypi/
  return (index:gsub("simple/$", "pypi/"))
end

local function version_of(filename, normalized)
  if filename:match("%.whl$") then
    return (filename:match("^[^-]+%-([^-]+)%-"))
  end
  local stem = filename:gsub("%.tar%.gz$", ""):gsub("%.zip$", ""):gsub("%.tar%.bz2$", "")
  local name, version = stem:match("^(.*)%-([^-]+)$")
  if name and (not normalized or M.normalize(name) == normalized) then return version end
  return (stem:match("%-([^-]+)$"))
end

local function unescape_html(s)
  return (s:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&#39;", "'"):gsub("&amp;", "&"))
end

local function absolute(base, href)
  if href:match("^%a[%w+.-]*://") then return href end
  local scheme_host = base:match("^(%a[%w+.-]*://[^/]+)")
  if href:sub(1, 1) == "/" then return scheme_host .. href end
  local dir = base:gsub("[^/]*$", "")
  local path = dir .. href
  local prefix, rest = path:match("^(%a[%w+.-]*://[^/]+)(.*)$")
  local out = {}
  for seg in rest:gmatch("[^/]+") do
    if seg == ".." then out[#out] = nil elseif seg ~= "." then out[#out + 1] = seg end
  end
  return prefix .. "/" .. table.concat(out, "/") .. (rest:sub(-1) == "/" and "/" or "")
end

-- The parsed answer of a project page: {files = {{filename, version, sha256, url, size}}, versions}.
local function parse_simple(resp, url, normalized)
  local ctype = (resp.headers["content-type"] or ""):lower()
  local files, versions = {}, nil
  if ctype:find("json", 1, true) then
    local doc, msg = json.decode(resp.body, url)
    if type(doc) ~= "table" then return nil, "pypi: " .. (msg or (url .. ": not a JSON object")), "protocol" end
    for _, f in ipairs(doc.files or {}) do
      files[#files + 1] = {
        filename = f.filename, sha256 = f.hashes and f.hashes.sha256, size = f.size,
        url = f.url and absolute(url, f.url), version = version_of(f.filename, normalized),
      }
    end
    versions = doc.versions
  else
    for attrs, text in resp.body:gmatch("<a%s([^>]*)>(.-)</a>") do
      local href = attrs:match('href="([^"]*)"') or attrs:match("href='([^']*)'")
      if href then
        href = unescape_html(href)
        local filename = unescape_html(text):gsub("^%s+", ""):gsub("%s+$", "")
        local sha = href:match("#sha256=(%x+)")
        files[#files + 1] = {
          filename = filename, sha256 = sha and sha:lower(), url = absolute(url, (href:gsub("#.*$", ""))),
          version = version_of(filename, normalized),
        }
      end
    end
  end
  return files, versions
end

local function parse_json_api(resp, url, normalized)
  local doc, msg = json.decode(resp.body, url)
  if type(doc) ~= "table" then return nil, "pypi: " .. (msg or (url .. ": not a JSON object")), "protocol" end
  local files, versions = {}, {}
  local releases = doc.releases or { [doc.info and doc.info.version or "?"] = doc.urls or {} }
  for version, list in pairs(releases) do
    versions[#versions + 1] = version
    for _, f in ipairs(list) do
      files[#files + 1] = {
        filename = f.filename, sha256 = f.digests and f.digests.sha256, size = f.size,
        url = f.url and absolute(url, f.url), version = version or version_of(f.filename, normalized),
      }
    end
  end
  return files, versions
end

local function sorted_versions(files, versions)
  local seen, out = {}, {}
  for _, v in ipairs(versions or {}) do
    if not seen[v] then seen[v] = true; out[#out + 1] = v end
  end
  for _, f in ipairs(files) do
    if f.version and not seen[f.version] then seen[f.version] = true; out[#out + 1] = f.version end
  end
  return pep440.sort(out, false, { invalid = "first" })
end

-- One lookup request for a project (for http.all) and the function that reads its answer
-- (with the project's versions sorted unless `files_only`).
local function lookup_request(name, opts, files_only)
  local normalized = M.normalize(name)
  local index = opt_index(opts)
  local req
  if opts.api == "json" then
    req = { url = json_base(index) .. normalized .. "/json", timeout = opts.timeout,
            headers = { accept = "application/json", ["cache-control"] = "no-cache" } }
  else
    req = { url = index .. normalized .. "/", timeout = opts.timeout,
            headers = { accept = opts.api == "html" and "text/html" or ACCEPT, ["cache-control"] = "no-cache" } }
  end
  req.progress = false
  req.connect_timeout = opts.connect_timeout or publish.DEFAULTS.connect_timeout
  req.stall_timeout = opts.stall_timeout or publish.DEFAULTS.stall_timeout
  if opts.cainfo then req.cainfo = opts.cainfo end
  if opts.retry ~= nil then req.retry = opts.retry end
  local function read(resp, msg, code)
    if not resp then return nil, msg, code end
    if resp.status == 404 then return { files = {}, versions = {}, exists = false } end
    if resp.status ~= 200 then
      return nil, string.format("pypi: GET %s: HTTP %d", resp.url or http.redact(req.url), resp.status), "http_status"
    end
    local files, versions
    if opts.api == "json" then
      files, versions, code = parse_json_api(resp, resp.url or req.url, normalized)
    else
      files, versions, code = parse_simple(resp, resp.url or req.url, normalized)
    end
    if not files then return nil, versions, code end
    return { files = files, versions = not files_only and sorted_versions(files, versions) or nil, exists = true }
  end
  return req, read
end

---@class relua.pypi.Options
---@field url string?          the upload URL (legacy API), e.g. "https://upload.pypi.org/legacy/"
---@field index string?        the simple index URL; derived from url when absent (".../legacy/" -> ".../simple/")
---@field api "simple"|"html"|"json"? how to read the index. Unset (default): the simple API (PEP 691 JSON asked for, PEP 503 HTML read if that is what comes), and /pypi/NAME/json when the simple API does not know the project; "simple", "html" (asks for HTML only) or "json" (/pypi/NAME/json) use that one only
---@field user string?         upload user name (default $TWINE_USERNAME or "__token__")
---@field password string?     upload password or API token (default: $PYPI_TOKEN, or the variable named by password_env)
---@field password_env string? the environment variable holding the password (default "PYPI_TOKEN")
---@field timeout number?      seconds per request
---@field concurrency integer? parallel lookups in publish_all (default 8)
---@field cainfo string?       CA bundle for TLS
---@field retry table|false?   retry policy of the index reads (relua.http's `retry`)
---@field tries integer?       upload attempts when the index answers 5xx/429 or the connection fails (default 4)
---@field confirm_timeout number? seconds to wait for an accepted upload to show on the index (default 10)
---@field progress boolean?    relua.http's progress option for uploads

--- The files a project has on the index: `{exists=, versions={...}, files={{filename=, version=, sha256=, url=, size=}}}`.
--- A project the index does not know gives `exists=false` and empty lists.
---@param name string
---@param opts relua.pypi.Options
---@return table|nil project
---@return string? message
---@return string? code
function M.project(name, opts)
  opts = opts or {}
  local req, read = lookup_request(name, opts)
  local p, msg, code = read(http.request(req))
  if opts.api == nil and ((p and not p.exists) or code == "http_status") then
    -- "Whichever the index offers": an index without the simple API may have the JSON one.
    local jopts = setmetatable({ api = "json" }, { __index = opts })
    local jreq, jread = lookup_request(name, jopts)
    local jp = jread(http.request(jreq))
    if jp and jp.exists then return jp end
  end
  return p, msg, code
end

--- The versions of a project, oldest first (empty when the project does not exist).
---@param name string
---@param opts relua.pypi.Options
---@return string[]|nil versions
---@return string? message
---@return string? code
function M.versions(name, opts)
  local p, msg, code = M.project(name, opts)
  if not p then return nil, msg, code end
  return p.versions
end

--- The files of one version: `{{filename=, sha256=, url=, size=}, ...}` (empty when absent).
---@param name string
---@param version string
---@param opts relua.pypi.Options
---@return table[]|nil files
---@return string? message
---@return string? code
function M.files(name, version, opts)
  local p, msg, code = M.project(name, opts)
  if not p then return nil, msg, code end
  local out = {}
  for _, f in ipairs(p.files) do
    if f.version == version then out[#out + 1] = f end
  end
  return out
end

-- ------------------------------------------------------------------ publishing

local function credentials(opts)
  local var = opts.password_env or M.PASSWORD_ENV
  local password, source = opts.password, (opts.sources or {}).password or "opts.password"
  if password == nil then
    password, source = os.getenv(var), "$" .. var
    if (password == nil or password == "") and not opts.password_env then
      local tp = os.getenv("TWINE_PASSWORD")
      if tp and tp ~= "" then password, source = tp, "$TWINE_PASSWORD" end
    end
  end
  if password == nil or password == "" then
    err.raise("auth", string.format("pypi: no upload credentials: %s is not set", "$" .. var),
      { hint = "set " .. var .. " to an API token (or pass opts.password)" })
  end
  local user = opts.user or os.getenv("TWINE_USERNAME") or "__token__"
  return { user = user, password = password }, source
end

local function find(project, filename)
  for _, f in ipairs(project.files) do
    if f.filename == filename then return f end
  end
end

-- What the index holds for each project of dists, read at once (http.all, at most
-- opts.concurrency connections): projects[normalized] = project | {err=, code=}.
local function lookup_projects(dists, opts)
  local reqs, reads, slot, names = {}, {}, {}, {}
  for _, d in ipairs(dists) do
    local key = M.normalize(d.name)
    names[key] = d.name
    if not slot[key] then
      local req, read = lookup_request(d.name, opts, true)
      reqs[#reqs + 1], reads[#reads + 1] = req, read
      slot[key] = #reqs
    end
  end
  local all = { concurrency = opts.concurrency or 8, progress = false }
  local answers = http.all(reqs, all)
  local projects, again = {}, {}
  for key, i in pairs(slot) do
    local a = answers[i]
    local p, msg, code = reads[i](a[1], a[2], a[3])
    if opts.api == nil and ((p and not p.exists) or code == "http_status") then
      again[#again + 1] = { key = key, name = names[key], p = p, msg = msg, code = code }
    elseif not p then
      projects[key] = { err = msg, code = code }
    else
      projects[key] = p
    end
  end
  if #again > 0 then
    -- Not on the simple API: ask the JSON API too ("whichever the index offers").
    local jopts = setmetatable({ api = "json" }, { __index = opts })
    local jreqs, jreads = {}, {}
    for j, g in ipairs(again) do jreqs[j], jreads[j] = lookup_request(g.name, jopts, true) end
    local janswers = http.all(jreqs, all)
    for j, g in ipairs(again) do
      local jp = jreads[j](janswers[j][1], janswers[j][2], janswers[j][3])
      if jp and jp.exists then projects[g.key] = jp
      elseif g.p then projects[g.key] = g.p
      else projects[g.key] = { err = g.msg, code = g.code } end
    end
  end
  return projects
end

--- The adapter of relua.publish for PyPI-compatible indexes (doc/publish.md).
M.adapter = {
  name = "pypi",
  inspect = function(path) return M.inspect_or_raise(path) end,
  label = function(d) return d.filename end,
  where = function(opts) return opt_index(opts) end,
  look = function(dists, opts)
    local projects = lookup_projects(dists, opts)
    local out = {}
    for i, d in ipairs(dists) do
      local p = projects[M.normalize(d.name)]
      if p.err then out[i] = { err = p.err, code = p.code }
      else out[i] = { remote = find(p, d.filename) } end
    end
    return out
  end,
  -- The index's sha256; an index that shows none: download the file and hash it.
  -- A download that fails is "unknown", never "different".
  compare = function(dist, remote, opts)
    if remote.sha256 then
      return remote.sha256:lower() == dist.sha256 and "same" or "different", remote.sha256:lower()
    end
    if not remote.url then return "unknown" end
    local tmp = assert(fs.tmpdir("relua-pypi-"))
    local out = fs.join(tmp, "dl")
    local resp = http.request{ url = remote.url, output = out, progress = false, cainfo = opts.cainfo,
      connect_timeout = opts.connect_timeout or publish.DEFAULTS.connect_timeout, timeout = opts.timeout }
    local sha = resp and resp.status == 200 and fs.digest(out, "sha256") or nil
    fs.remove(tmp, { recursive = true })
    if not sha then return "unknown" end
    return sha == dist.sha256 and "same" or "different", sha
  end,
  credentials = function(opts) return credentials(opts) end,
  send = function(dist, opts, auth, t)
    local form = {
      { name = ":action", value = "file_upload" },
      { name = "protocol_version", value = "1" },
      { name = "name", value = dist.name },
      { name = "version", value = dist.version },
      { name = "filetype", value = dist.filetype },
      { name = "pyversion", value = dist.pyversion },
      { name = "metadata_version", value = dist.metadata_version },
      { name = "sha256_digest", value = dist.sha256 },
      { name = "md5_digest", value = dist.md5 },
    }
    if dist.summary then form[#form + 1] = { name = "summary", value = dist.summary } end
    if dist.requires_python then form[#form + 1] = { name = "requires_python", value = dist.requires_python } end
    form[#form + 1] = { name = "content", file = dist.path, filename = dist.filename,
                        type = "application/octet-stream" }
    return http.request{
      method = "POST", url = opts.url, auth = auth, form = form, timeout = t.timeout,
      connect_timeout = t.connect_timeout, stall_timeout = t.stall_timeout,
      label = dist.filename, cainfo = opts.cainfo, progress = opts.progress,
      fresh = true,  -- never a keep-alive connection the server may have dropped meanwhile
    }
  end,
  exists = function(resp)
    return resp.status == 409 or (resp.status == 400 and (resp.body or ""):lower():find("already exist", 1, true) ~= nil)
  end,
  immutable = function(dist, remote_sha, where)
    return string.format("pypi: %s %s: %s is already on %s with sha256 %s, but the local file has sha256 %s",
      dist.name, dist.version, dist.filename, where, remote_sha or "(unknown)", dist.sha256),
      string.format("published files are immutable: version %s of %s is burned; "
        .. "bump the version and publish a new version", dist.version, dist.name),
      { remote_sha256 = remote_sha, local_sha256 = dist.sha256, filename = dist.filename }
  end,
  result = function(dist, remote)
    return { filename = dist.filename, sha256 = dist.sha256, url = remote and remote.url,
             name = dist.name, version = dist.version, digest = "sha256:" .. dist.sha256 }
  end,
  log_fields = function(r) return { file = r.filename, sha256 = r.sha256 } end,
  -- Pre-flight: the index answers. PyPI has no read that needs the upload token, so the
  -- token itself is first tested by the upload (its absence is a pre-flight failure).
  probe = function(opts)
    local index = opt_index(opts)
    local resp, msg = http.request{ url = index, progress = false, retry = false, cainfo = opts.cainfo,
      connect_timeout = opts.connect_timeout or publish.DEFAULTS.connect_timeout, timeout = opts.timeout or 30 }
    if not resp then return false, msg end
    if resp.status >= 500 then return false, string.format("GET %s: HTTP %d", http.redact(index), resp.status) end
    return true
  end,
  auth_hint = function(source, auth) return "check the token in " .. source .. " (user " .. auth.user .. ")" end,
}

--- inspect, raising `bad_dist` / `ENOENT` instead of returning nil.
---@param path string
---@return relua.pypi.Dist
function M.inspect_or_raise(path)
  local dist, msg, code = M.inspect(path)
  if not dist then
    err.raise(code == "ENOENT" and "ENOENT" or "bad_dist", msg)
  end
  return dist
end
local inspect_or_raise = M.inspect_or_raise

---@class relua.pypi.Result
---@field status "published"|"skipped_existing"
---@field filename string
---@field name string
---@field version string
---@field sha256 string
---@field url string?

--- Verify-or-publish many distributions: all are inspected and checked against the index
--- at once (http.all); if any is already there with different bytes, an `immutable` error
--- is raised before anything is uploaded; then the absent ones are uploaded one by one.
---@param paths string[]
---@param opts relua.pypi.Options
---@return relua.pypi.Result[]
function M.publish_all(paths, opts)
  opts = opts or {}
  if type(paths) ~= "table" then error("pypi.publish_all: paths must be an array of file paths", 2) end
  if not opts.url then error("pypi.publish: opts.url (the upload URL) is required", 2) end
  local dists = {}
  for i, p in ipairs(paths) do dists[i] = inspect_or_raise(p) end
  return publish.run(M.adapter, dists, opts)
end

--- Verify-or-publish one distribution (a wheel or an sdist).
--- Absent: uploaded, then the index is read back and its sha256 confirmed -> "published".
--- Present with the same sha256: nothing is sent -> "skipped_existing".
--- Present with another sha256: raises `immutable` (both digests; publish a new version).
--- Other failures raise structured errors: `auth`, `unreachable`, `upload_failed`, `bad_dist`, ...
---@param path string
---@param opts relua.pypi.Options
---@return relua.pypi.Result
function M.publish(path, opts)
  if type(path) ~= "string" then error("pypi.publish: path must be a string", 2) end
  if not (opts and opts.url) then error("pypi.publish: opts.url (the upload URL) is required", 2) end
  return M.publish_all({ path }, opts)[1]
end

return M
