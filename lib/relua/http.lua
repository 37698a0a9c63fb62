--- relua.http: HTTP(S) requests over libcurl (doc/http.md).
-- The C core (relua.core.http) runs transfers and reports facts; this module holds the
-- policy: argument checks, retries with backoff, error codes, truncation, size caps,
-- progress lines, and keeping credentials out of every message.
local core = require "relua.core.http"
local version = require "relua.core.version"  -- not relua.version: that loads libgit2
local json = require "relua.json"
local log = require "relua.log"

local M = {}

--- The User-Agent sent with every request.
M.user_agent = "relua/" .. version.relua

local MiB = 1024 * 1024
local DEFAULT_MAX_SIZE = 256 * MiB
local BIG = 1 * MiB               -- transfers over this size get progress output
local TICK = 0.2                  -- seconds between progress redraws

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true }
local RETRY_DEFAULTS = { tries = 4, base = 0.5, max_delay = 10, max_retry_after = 60,
  statuses = { 429, 500, 502, 503, 504 } }

-- libcurl result codes -> relua's codes (doc/http.md, "Failures").
local CURL_CODES = {
  [1] = "url", [3] = "url",
  [5] = "resolve", [6] = "resolve",
  [7] = "connect",
  [28] = "timeout",
  [16] = "network", [52] = "network", [55] = "network", [56] = "network", [92] = "network",
  [18] = "truncated",
  [63] = "too_large",
  [47] = "redirects",
  [23] = "file", [26] = "file", [37] = "file",
  [35] = "tls", [51] = "tls", [53] = "tls", [54] = "tls", [58] = "tls", [59] = "tls",
  [60] = "tls", [64] = "tls", [66] = "tls", [77] = "tls", [80] = "tls", [82] = "tls",
  [83] = "tls", [90] = "tls", [91] = "tls",
}
local ECONNREFUSED = 111

-- ------------------------------------------------------------------ helpers

--- The URL with `user:password@` removed.
---@param url string
---@return string
function M.redact(url)
  if type(url) ~= "string" then return url end
  return (url:gsub("^(%a[%w+.-]*://)[^/?#@]*@", "%1"))
end

-- Removes URL credentials anywhere in a text, and the given secrets.
local function scrub(text, secrets)
  text = text:gsub("(%a[%w+.-]*://)[^/%s?#@]*@", "%1")
  for _, s in ipairs(secrets or {}) do
    if #s >= 4 then
      local i = text:find(s, 1, true)
      while i do
        text = text:sub(1, i - 1) .. "***" .. text:sub(i + #s)
        i = text:find(s, i + 3, true)
      end
    end
  end
  return text
end

--- Percent-encodes everything but A-Z a-z 0-9 - . _ ~
---@param s string|number
---@return string
function M.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

--- `k=v&...` from a table, keys sorted; an array value repeats its key.
---@param t table<string, string|number|boolean|table>
---@return string
function M.query(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) ~= "table" then v = { v } end
    for _, x in ipairs(v) do parts[#parts + 1] = M.urlencode(k) .. "=" .. M.urlencode(tostring(x)) end
  end
  return table.concat(parts, "&")
end

local function human(n)
  if n >= MiB then return string.format("%.1f MiB", n / MiB) end
  if n >= 1024 then return string.format("%.1f KiB", n / 1024) end
  return string.format("%d B", n)
end

-- days since 1970-01-01 of a civil date (H. Hinnant's algorithm)
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Retry-After: delta-seconds or an HTTP date; seconds from now, or nil.
local function parse_retry_after(v)
  if not v then return nil end
  local n = v:match("^%s*(%d+)%s*$")
  if n then return tonumber(n) end
  local d, mon, y, h, mi, s = v:match("(%d+)[ -](%a+)[ -](%d+) (%d+):(%d+):(%d+)")
  if d and MONTHS[mon] then
    y = tonumber(y)
    if y < 100 then y = y + 1900 end
    local t = days_from_civil(y, MONTHS[mon], tonumber(d)) * 86400 + tonumber(h) * 3600
      + tonumber(mi) * 60 + tonumber(s)
    return math.max(0, t - os.time())
  end
  return nil
end

local byte = string.byte

-- ------------------------------------------------------------------ arguments

local KEYS = {
  method = "string", url = "string", headers = "table", query = "table", body = "string",
  body_file = "string", json = "any", form = "table", content_type = "string",
  auth = "table", bearer = "string", timeout = "number", connect_timeout = "number",
  stall_timeout = "number", output = "string", max_size = "number", follow = "boolean",
  max_redirects = "number", cainfo = "string", insecure = "boolean", retry = "retry",
  progress = "boolean", label = "string", expect_continue = "boolean", fresh = "boolean",
}
local RETRY_KEYS = { tries = "number", base = "number", max_delay = "number",
  max_retry_after = "number", idempotent = "boolean", statuses = "table" }
local SECRET_HEADERS = { authorization = true, ["proxy-authorization"] = true, cookie = true }

local function check_keys(fname, t, keys, what)
  for k, v in pairs(t) do
    local want = keys[k]
    if want == nil then
      error(string.format("%s: unknown %s '%s'", fname, what, tostring(k)), 0)
    end
    local ok = want == "any" or type(v) == want
      or (want == "retry" and (type(v) == "table" or type(v) == "boolean"))
    if not ok then
      error(string.format("%s: %s '%s' must be a %s, got %s", fname, what, k,
        want == "retry" and "table or false" or want, type(v)), 0)
    end
  end
end

local function check_header_text(fname, s)
  if s:find("\n", 1, true) or s:find("\r", 1, true) then
    error(fname .. ": a header name or value contains a line break", 0)
  end
end

local function env_nonempty(name)
  local v = os.getenv(name)
  if v ~= nil and v ~= "" then return v end
  return nil
end

local BODY_KEYS = { "body", "body_file", "json", "form" }
local shared_policies = {}  -- the policies of retry = nil / false per method: read-only

-- The retry policy of a request (read-only: the default ones are shared by all requests).
local function retry_policy(fname, method, r)
  local key = (r == nil and method) or (r == false and method .. " no retry") or nil
  if key and shared_policies[key] then return shared_policies[key] end
  local policy = {}
  for k, v in pairs(RETRY_DEFAULTS) do policy[k] = v end
  if r == false then
    policy.tries = 1
  elseif type(r) == "table" then
    check_keys(fname, r, RETRY_KEYS, "retry option")
    for k, v in pairs(r) do policy[k] = v end
  end
  policy.tries = math.max(1, math.floor(policy.tries))
  local retry_status = {}
  for _, s in ipairs(policy.statuses) do retry_status[s] = true end
  policy.status = retry_status
  if policy.idempotent == nil then policy.idempotent = IDEMPOTENT[method] or false end
  if key then shared_policies[key] = policy end
  return policy
end

-- The last part of a URL's path ("https://h/a/b/?q=1" -> "b"), for the progress line.
local function url_label(shown)
  local path = shown:match("^[^?#]*")
  local e = #path
  while byte(path, e) == 47 do e = e - 1 end  -- "/"
  local b = e
  while b > 0 and byte(path, b) ~= 47 do b = b - 1 end
  return b < e and path:sub(b + 1, e) or shown
end

-- Turns a request table into a job: the spec for the C core plus the policy around it.
local function prepare(req, fname)
  if type(req) ~= "table" then
    error(string.format("%s: expected a request table, got %s", fname, type(req)), 0)
  end
  check_keys(fname, req, KEYS, "option")
  if not req.url then error(fname .. ": 'url' is required", 0) end
  local nbodies = 0
  for _, k in ipairs(BODY_KEYS) do
    if req[k] ~= nil then nbodies = nbodies + 1 end
  end
  if nbodies > 1 then error(fname .. ": give at most one of body, body_file, json, form", 0) end
  if req.auth and req.bearer then error(fname .. ": give auth or bearer, not both", 0) end

  local method = (req.method or (req.form and "POST") or "GET"):upper()
  if not method:find("^[%w!#$%%&'*+.^_`|~-]+$") then
    error(fname .. ": invalid method '" .. method .. "'", 0)
  end
  local url = req.url
  if req.query then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. M.query(req.query)
  end
  local secrets = {}
  local spec = {
    method = method, url = url, user_agent = M.user_agent,
    follow = req.follow ~= false, max_redirects = req.max_redirects or 10,
    nobody = method == "HEAD", insecure = req.insecure,
    cainfo = req.cainfo or env_nonempty("CURL_CA_BUNDLE") or env_nonempty("SSL_CERT_FILE"),
    fresh = req.fresh,
    timeout_ms = req.timeout and math.max(1, math.floor(req.timeout * 1000)) or nil,
    connect_timeout_ms = math.max(1, math.floor((req.connect_timeout or 10) * 1000)),
    stall_seconds = math.floor(req.stall_timeout or 60),
  }
  local userinfo = url:match("^%a[%w+.-]*://([^/?#@]*)@")
  if userinfo then
    local pw = userinfo:match(":(.*)$")
    if pw and pw ~= "" then secrets[#secrets + 1] = pw end
  end

  -- headers: given ones (sorted, for a deterministic request), then the defaults
  local lines, given = {}, {}
  if req.headers then
    local names = {}
    for k in pairs(req.headers) do
      if type(k) ~= "string" then error(fname .. ": header names must be strings", 0) end
      names[#names + 1] = k
    end
    table.sort(names)
    for _, k in ipairs(names) do
      local v, lk = req.headers[k], k:lower()
      check_header_text(fname, k)
      given[lk] = true
      if v == false then
        lines[#lines + 1] = k .. ":"
      else
        if type(v) ~= "table" then v = { v } end
        for _, x in ipairs(v) do
          if type(x) ~= "string" and type(x) ~= "number" then
            error(string.format("%s: header '%s' must be a string, got %s", fname, k, type(x)), 0)
          end
          x = tostring(x)
          check_header_text(fname, x)
          if SECRET_HEADERS[lk] then
            secrets[#secrets + 1] = x
            secrets[#secrets + 1] = x:match("^%S+%s+(.+)$")  -- the token after "Bearer "
          end
          lines[#lines + 1] = k .. ": " .. x
        end
      end
    end
  end
  local function default(name, value)
    if not given[name:lower()] then
      check_header_text(fname, value)
      lines[#lines + 1] = name .. ": " .. value
      given[name:lower()] = true
    end
  end
  if req.content_type then default("Content-Type", req.content_type) end
  if req.bearer then
    secrets[#secrets + 1] = req.bearer
    default("Authorization", "Bearer " .. req.bearer)
  end
  if not req.expect_continue and not given.expect then lines[#lines + 1] = "Expect:" end
  spec.headers = lines

  if req.auth then
    local a = req.auth
    if type(a.user) ~= "string" or type(a.password) ~= "string" then
      error(fname .. ": auth must be {user=string, password=string}", 0)
    end
    spec.user, spec.password = a.user, a.password
    secrets[#secrets + 1] = a.password
  end

  -- body
  local upload = 0
  if req.body then
    spec.body = req.body
    upload = #req.body
    default("Content-Type", "application/octet-stream")
  elseif req.json ~= nil then
    spec.body = json.encode(req.json)
    upload = #spec.body
    default("Content-Type", "application/json")
  elseif req.body_file then
    spec.body_file = req.body_file
    default("Content-Type", "application/octet-stream")
  elseif req.form then
    local parts = {}
    for i, p in ipairs(req.form) do
      local where = string.format("%s: form part %d", fname, i)
      if type(p) ~= "table" or type(p.name) ~= "string" then
        error(where .. ": needs a string 'name'", 0)
      end
      if (p.value == nil) == (p.file == nil) then
        error(where .. " (" .. p.name .. "): give exactly one of value, file", 0)
      end
      if p.value ~= nil and type(p.value) ~= "string" then
        error(where .. " (" .. p.name .. "): 'value' must be a string", 0)
      end
      local part = { name = p.name, value = p.value, file = p.file, filename = p.filename,
        type = p.type }
      if p.file then
        if type(p.file) ~= "string" then error(where .. ": 'file' must be a path", 0) end
        part.filename = p.filename or p.file:match("([^/]+)$")
        part.type = p.type or "application/octet-stream"
      end
      if p.headers then
        local hl = {}
        for k, v in pairs(p.headers) do
          check_header_text(fname, k .. tostring(v))
          hl[#hl + 1] = k .. ": " .. tostring(v)
        end
        table.sort(hl)
        part.headers = hl
      end
      parts[#parts + 1] = part
    end
    spec.form = parts
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    spec.body = ""   -- an explicit empty body: Content-Length: 0
  end

  if req.max_size then
    spec.max_size = math.floor(req.max_size)
  elseif not req.output then
    spec.max_size = DEFAULT_MAX_SIZE
  end

  local policy = retry_policy(fname, method, req.retry)
  local shown = M.redact(url)
  return {
    spec = spec, method = method, url = url, shown = shown, secrets = secrets,
    policy = policy, output = req.output, part = req.output and (req.output .. ".part"),
    progress = req.progress,
    label = req.label or url_label(shown),
    upload_size = upload, attempts = 0,
    prefix = "http: " .. method .. " " .. shown .. ": ",
  }
end

-- ------------------------------------------------------------------ outcomes

local function failure(job, msg, code, cause)
  msg = scrub(msg, job.secrets)
  if job.attempts > 1 then msg = msg .. string.format(" (after %d attempts)", job.attempts) end
  return { n = 4, nil, job.prefix .. msg, code, cause }
end

local function lowerfirst(s)
  return (s:gsub("^%u%l", string.lower))
end

-- What a finished attempt means: {final = result} or {retry = seconds}.
local function judge(job, r)
  local policy = job.policy
  local can_retry = job.attempts < policy.tries
  local code = CURL_CODES[r.curl]
  local msg

  if r.curl == 0 then
    -- libcurl said OK: check the size ourselves (a dying connection can look like success)
    local headers, list = r.header_map, r.header_list  -- parsed by the C core
    local cl = r.content_length
    local bodyless = job.method == "HEAD" or r.status == 204 or r.status == 304
      or (r.status >= 100 and r.status < 200)
    local h = r.headers
    if h:sub(-2) ~= "\n\n" and h:sub(-3) ~= "\n\r\n" then  -- the head ends with a blank line
      -- the connection closed inside the head: libcurl reports the status line as a success
      code = "truncated"
      msg = "truncated response: the connection closed inside the headers"
    elseif not bodyless and cl and cl >= 0 and r.size ~= cl then
      code = "truncated"
      msg = string.format("truncated body: received %d of %d bytes (Content-Length)", r.size, cl)
    else
      local resp = {
        status = r.status, headers = headers, header_list = list, size = r.size,
        url = (r.url == nil or r.url == job.url) and job.shown or M.redact(r.url), redirects = r.redirects,
        ok = r.status >= 200 and r.status <= 299, attempts = job.attempts,
      }
      if not job.output then resp.body = r.body or "" end
      if can_retry and policy.idempotent and policy.status[r.status] then
        local wait = parse_retry_after(headers["retry-after"])
        if wait and (r.status == 429 or r.status == 503) then
          if wait > policy.max_retry_after then return { final = resp } end
          return { retry = wait, why = tostring(r.status) }
        end
        return { retry = nil, why = tostring(r.status) }
      end
      return { final = resp }
    end
  end

  if not msg then
    local text = lowerfirst(r.error or "")
    if r.too_large then
      code = "too_large"
      msg = string.format("response body over max_size (%d bytes)", job.spec.max_size or 0)
    elseif r.curl == 63 then
      msg = string.format("response body over max_size (%d bytes): %s", job.spec.max_size or 0, text)
    elseif r.output_error then
      code = "file"
      msg = string.format("cannot write output %s: %s", job.part, r.output_error)
    elseif r.input_error then
      code = "file"
      msg = string.format("cannot read body_file %s: %s", job.spec.body_file, r.input_error)
    elseif r.curl == 18 then
      msg = "truncated body: " .. text
    elseif r.curl == 7 and r.os_errno == ECONNREFUSED then
      msg = "connection refused"
    else
      msg = text
    end
    code = code or "http"
    if r.curl ~= 0 then msg = msg .. string.format(" (curl %d)", r.curl) end
  end

  -- Was anything sent? A refused or unresolved connection never carried the request.
  local unsent = code == "resolve" or code == "connect" or (code == "timeout" and not r.started)
  local transient = unsent or code == "timeout" or code == "network" or code == "truncated"
  if policy.idempotent then
    if transient and can_retry then return { retry = nil, why = code } end
    return { final = failure(job, msg, code) }
  end
  if unsent then
    if can_retry then return { retry = nil, why = code } end
    return { final = failure(job, msg, code) }
  end
  if transient then
    return { final = failure(job, msg .. "; the server may have acted on the " .. job.method ..
      ": check before sending it again", "ambiguous", code) }
  end
  return { final = failure(job, msg, code) }
end

local function backoff(policy, n)
  local d = math.min(policy.max_delay, policy.base * 2 ^ (n - 1))
  return d * (0.5 + math.random() * 0.5)
end

--- Seconds a response's Retry-After asks for (delta-seconds or an HTTP date), or nil.
---@param v string?
---@return number?
M.retry_after = parse_retry_after

--- The back-off before attempt n+1 (seconds; exponential from base, capped, with jitter):
--- the same policy the retries of relua.http follow. Defaults: base 0.5, max 10.
---@param n integer
---@param base number?
---@param max number?
---@return number
function M.backoff(n, base, max)
  return backoff({ base = base or RETRY_DEFAULTS.base, max_delay = max or RETRY_DEFAULTS.max_delay }, n)
end

-- ------------------------------------------------------------------ progress

local function progress_env_off()
  local v = os.getenv("RELUA_PROGRESS")
  return v == "0" or v == "false" or v == "no"
end

local function trace_on()
  local v = os.getenv("RELUA_HTTP_TRACE")
  return v ~= nil and v ~= "" and v ~= "0"
end

local Progress = {}
Progress.__index = Progress

local function new_progress(enabled)
  return setmetatable({ enabled = enabled and not progress_env_off(), tty = core.isatty(2),
    last = 0, drawn = false }, Progress)
end

function Progress:wants(job, now, total)
  if not self.enabled or job.progress == false then return false end
  return job.progress == true or now > BIG or total > BIG
end

function Progress:clear()
  if self.drawn then
    io.stderr:write("\r\27[K")
    self.drawn = false
  end
end

function Progress:tick(active, force)
  if not (self.enabled and self.tty) then return end
  local t = core.clock()
  if not force and t - self.last < TICK then return end
  self.last = t
  local parts = {}
  for tr, job in pairs(active) do
    local dlnow, dltotal, ulnow, ultotal = tr:progress()
    local up = ultotal > 0 and ulnow < ultotal or (ulnow > dlnow)
    local now, total = up and ulnow or dlnow, up and ultotal or dltotal
    if self:wants(job, now, total) then
      local elapsed = math.max(1e-3, t - job.attempt_start)
      local s
      if total > 0 then
        s = string.format("%s %s %s / %s %3d%% %s/s", job.label, up and "↑" or "↓",
          human(now), human(total), math.floor(now * 100 / total), human(now / elapsed))
      else
        s = string.format("%s %s %s %s/s", job.label, up and "↑" or "↓", human(now),
          human(now / elapsed))
      end
      parts[#parts + 1] = s
    end
  end
  if #parts > 0 then
    table.sort(parts)
    local line = "http: " .. table.concat(parts, " | ")
    if #line > 200 then line = line:sub(1, 197) .. "..." end
    io.stderr:write("\r\27[K", line)
    io.stderr:flush()
    self.drawn = true
  else
    self:clear()
  end
end

function Progress:finished(job, r)
  if not self.enabled then return end
  local sent = (r.uploaded or 0) > (r.size or 0)
  local n = sent and r.uploaded or r.size or 0
  if not self:wants(job, n, 0) then return end
  self:clear()
  local secs = math.max(r.time or 0, 1e-3)
  log.info(string.format("%s%s %s in %.1f s (%s/s)", job.prefix, human(n),
    sent and "sent" or "received", secs, human(n / secs)))
  io.stderr:flush()
end

-- ------------------------------------------------------------------ the engine

local shared_multi  -- one multi handle for the module: connections and DNS are reused

local function multi()
  if not shared_multi then shared_multi = core.multi() end
  return shared_multi
end

--- Connections to one host at once (the transfers beyond wait for one and reuse it): a
--- small server's listen backlog (Python's socketserver: 5) is never overflowed.
M.MAX_HOST_CONNECTIONS = 4

-- Runs jobs to completion, at most `concurrency` transfers at once; fills job.result.
local function execute(jobs, concurrency, show_progress, per_host)
  local m = multi()
  m:limit(per_host or M.MAX_HOST_CONNECTIONS)
  local active, nactive, waiting, next_i = {}, 0, {}, 1
  local progress = new_progress(show_progress ~= false)
  local trace = trace_on()
  -- On any error (Ctrl-C), stop what runs and remove partial output files.
  local guard <close> = setmetatable({}, { __close = function()
    for t, job in pairs(active) do
      t:close()
      if job.part then os.remove(job.part) end
    end
    progress:clear()
  end })

  local function start(job)
    job.attempts = job.attempts + 1
    job.started_at = job.started_at or core.clock()
    job.attempt_start = core.clock()
    if job.part then job.spec.output = job.part end
    if trace then io.stderr:write("http: > ", job.method, " ", job.shown, "\n") end
    local t, err, code = core.transfer(job.spec)
    if not t then
      job.result = failure(job, err, code)
      return
    end
    m:add(t)
    active[t] = job
    nactive = nactive + 1
  end

  local function finish(job, r)
    local verdict = judge(job, r)
    if trace then
      io.stderr:write(string.format("http: < %s %s %s (%.3f s)%s\n",
        r.curl == 0 and tostring(r.status) or ("curl " .. r.curl), job.method, job.shown,
        r.time or 0, verdict.final and "" or " retrying"))
    end
    if verdict.final then
      local res = verdict.final
      if res.n == nil then  -- a response
        if job.part and not res.ok then
          -- an error page never lands at the output path: it becomes the body
          local f = io.open(job.part, "rb")
          res.body = f and f:read(64 * 1024) or ""
          if f then f:close() end
          os.remove(job.part)
        elseif job.part then
          local ok, err = os.rename(job.part, job.output)
          if not ok then
            os.remove(job.part)
            job.result = failure(job, "cannot write output " .. job.output .. ": " .. tostring(err), "file")
            return
          end
        end
        res.duration = core.clock() - job.started_at
        progress:finished(job, r)
        job.result = { n = 1, res }
      else
        if job.part then os.remove(job.part) end
        job.result = res
      end
      return
    end
    local wait = verdict.retry or backoff(job.policy, job.attempts)
    job.not_before = core.clock() + wait
    waiting[#waiting + 1] = job
  end

  while true do
    local now = core.clock()
    local i = 1
    while i <= #waiting and nactive < concurrency do
      if waiting[i].not_before <= now then start(table.remove(waiting, i)) else i = i + 1 end
    end
    while nactive < concurrency and next_i <= #jobs do
      start(jobs[next_i])
      next_i = next_i + 1
    end
    if nactive == 0 and #waiting == 0 and next_i > #jobs then break end
    local wait = TICK
    for _, job in ipairs(waiting) do wait = math.min(wait, math.max(0, job.not_before - now)) end
    local done = m:run(wait)
    for _, t in ipairs(done) do
      local job = active[t]
      active[t] = nil
      nactive = nactive - 1
      local r = t:result()
      t:close()
      finish(job, r)
    end
    progress:tick(active)
  end
  progress:clear()
end

-- ------------------------------------------------------------------ public API

---@class relua.http.Response
---@field status integer
---@field ok boolean
---@field headers table<string, string>   lower-cased names; repeats joined with ", "
---@field header_list string[][]          {name, value} pairs in order
---@field body string?                    nil when `output` was given
---@field size integer
---@field url string                      final URL, credentials removed
---@field duration number
---@field attempts integer
---@field redirects integer

--- Makes one HTTP request (see doc/http.md for every option).
---@param req table
---@return relua.http.Response? response
---@return string? message
---@return string? code
---@return string? cause  the underlying code of an "ambiguous" failure
function M.request(req)
  local job = prepare(req, "http.request")
  execute({ job }, 1, req.progress)
  return table.unpack(job.result, 1, job.result.n)
end

local function shorthand(method)
  return function(url, req)
    local fname = "http." .. method:lower()
    if type(url) ~= "string" then
      error(string.format("%s: expected a URL string, got %s", fname, type(url)), 0)
    end
    local r = {}
    if req ~= nil then
      if type(req) ~= "table" then
        error(string.format("%s: expected an options table, got %s", fname, type(req)), 0)
      end
      for k, v in pairs(req) do r[k] = v end
    end
    if r.method or r.url then error(fname .. ": give the URL as the first argument, not in the options", 0) end
    r.method, r.url = method, url
    local job = prepare(r, fname)
    execute({ job }, 1, r.progress)
    return table.unpack(job.result, 1, job.result.n)
  end
end

--- GET url; opts as http.request without method and url.
---@type fun(url:string, opts:table?):relua.http.Response?, string?, string?
M.get = shorthand("GET")
---@type fun(url:string, opts:table?):relua.http.Response?, string?, string?
M.head = shorthand("HEAD")
---@type fun(url:string, opts:table?):relua.http.Response?, string?, string?, string?
M.post = shorthand("POST")
---@type fun(url:string, opts:table?):relua.http.Response?, string?, string?, string?
M.put = shorthand("PUT")
---@type fun(url:string, opts:table?):relua.http.Response?, string?, string?, string?
M.patch = shorthand("PATCH")
---@type fun(url:string, opts:table?):relua.http.Response?, string?, string?, string?
M.delete = shorthand("DELETE")

--- Runs many requests at once, at most opts.concurrency (default 8) in flight, and at
--- most opts.max_host_connections (default http.MAX_HOST_CONNECTIONS, 4) connections to
--- one host, reused from one request to the next.
--- Returns, in the same order, `{response, message, code}` per request (also named
--- `.response`, `.err`, `.code`).
---@param requests table[]
---@param opts {concurrency:integer?, progress:boolean?, max_host_connections:integer?}?
---@return table[]
function M.all(requests, opts)
  if type(requests) ~= "table" then
    error("http.all: expected an array of requests, got " .. type(requests), 0)
  end
  opts = opts or {}
  check_keys("http.all", opts, { concurrency = "number", progress = "boolean", max_host_connections = "number" }, "option")
  local concurrency = math.floor(opts.concurrency or 8)
  if concurrency < 1 then error("http.all: concurrency must be at least 1", 0) end
  local jobs = {}
  for i, req in ipairs(requests) do
    jobs[i] = prepare(req, "http.all: request " .. i)
  end
  execute(jobs, concurrency, opts.progress, opts.max_host_connections and math.floor(opts.max_host_connections))
  local results = {}
  for i, job in ipairs(jobs) do
    local r = job.result
    results[i] = { r[1], r[2], r[3], response = r[1], err = r[2], code = r[3], cause = r[4] }
  end
  return results
end

return M
