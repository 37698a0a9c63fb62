--- relua.publish: the one verify-or-publish state machine (doc/publish.md).
-- look -> compare (same / different / unknown) -> send -> classify -> confirm with back-off
-- -> retry (relua.http's back-off and Retry-After, HTTP dates included). The core owns the
-- error codes, the log lines and the dry run; an adapter (relua.registry.pypi, .npm, the
-- forge's release assets) supplies only what differs:
--   adapter.name                      "pypi", shown in messages and log lines
--   adapter.label(art)                what one artifact is called ("x-1.0-py3-none-any.whl")
--   adapter.where(opts)               the place read back, for messages (an index URL)
--   adapter.look(arts, opts)          -> list, per artifact: {remote = r} (present), {} (absent),
--                                        or {err = message, code = code} (could not look)
--   adapter.compare(art, remote, opts)-> "same" | "different" | "unknown", remote digest
--   adapter.credentials(opts)         -> creds, source (raises "auth" when missing)
--   adapter.send(art, opts, creds, t) -> resp | nil, message, code (one attempt; t: timeouts)
--   adapter.exists(resp)              -> true when the answer says "already exists"
--   adapter.immutable(art, remote_digest, where) -> message, hint, fields
--   adapter.result(art, remote)       -> the fields of a result (filename, sha256, url, ...)
--   (optional: method, failed_code, log_fields, auth_hint, refused(source), probe(opts))
-- Unknown is not different: a remote file that cannot be verified is retried, then the
-- error is `unverified`, never `immutable`. The core records what it sent (opts.sent, and
-- opts.on_sent to persist it), so its own upload that lands late is `published`; when the
-- answer is lost and the place cannot be read back, the error is `maybe_landed`.
local http = require "relua.http"
local err = require "relua.error"
local log = require "relua.log"

local M = {}

--- Defaults that fit a release (all overridable per call): seconds to connect, seconds
--- without a byte moving, and the bound on one artifact's whole publish (look, send,
--- retries, confirm): `deadline` + 1 s per MiB of the artifact.
M.DEFAULTS = { connect_timeout = 5, stall_timeout = 15, deadline = 120, per_mib = 1,
               tries = 4, confirm_timeout = 10, verify_tries = 3, max_retry_after = 60 }

local function sleep(seconds)
  if seconds > 0 then require("relua.proc").sleep(seconds) end
end

local function opt(opts, k)
  if opts[k] ~= nil then return opts[k] end
  return M.DEFAULTS[k]
end

--- Seconds to wait before attempt n+1: the answer's Retry-After (seconds or an HTTP date,
--- at most max_retry_after), else relua.http's exponential back-off with jitter.
---@param n integer
---@param resp table?
---@param opts table?
---@return number
function M.delay(n, resp, opts)
  local ra = resp and resp.headers and http.retry_after(resp.headers["retry-after"])
  if ra and ra >= 0 and ra <= opt(opts or {}, "max_retry_after") then return ra end
  return http.backoff(n)
end

local function unreachable_code(code)
  return (code == "connect" or code == "resolve" or code == "timeout") and "unreachable" or (code or "http")
end

-- A clock per artifact: the timeouts of each request within what is left of its deadline.
local function budget(art, opts)
  local proc = require "relua.proc"
  local total = opts.deadline_total or (opt(opts, "deadline") + opt(opts, "per_mib") * (art.size or 0) / 1048576)
  local t0 = proc.clock()
  local b = {}
  function b.left() return total - (proc.clock() - t0) end
  function b.timeouts()
    local left = math.max(1, b.left())
    return { connect_timeout = math.min(opt(opts, "connect_timeout"), left),
             stall_timeout = opt(opts, "stall_timeout"),
             timeout = opts.timeout and math.min(opts.timeout, left) or left }
  end
  b.total = total
  return b
end
M.budget = budget

local function raise_immutable(adapter, art, remote_digest, opts)
  local msg, hint, fields = adapter.immutable(art, remote_digest, adapter.where(opts))
  fields = fields or {}
  fields.hint = hint
  err.raise("immutable", msg, fields)
end

-- Compares a present remote; "unknown" is retried (a download that failed), never burned.
local function verify(adapter, art, remote, opts)
  local tries = opt(opts, "verify_tries")
  local verdict, digest
  for n = 1, tries do
    verdict, digest = adapter.compare(art, remote, opts)
    if verdict ~= "unknown" then return verdict, digest end
    if n < tries then
      log.warn(adapter.name .. ": could not verify the remote copy; looking again", { artifact = adapter.label(art), attempt = n })
      sleep(M.delay(n))
      local again = adapter.look({ art }, opts)[1]
      if again.remote then remote = again.remote end
    end
  end
  return "unknown", digest
end

local function unverified(adapter, art, opts)
  err.raise("unverified", string.format("%s: %s is on %s, but its content could not be read to compare it with the local file",
    adapter.name, adapter.label(art), adapter.where(opts)),
    { hint = "nothing was sent; re-run to check again (this is not a burned version)" })
end

local function outcome(adapter, art, remote, status)
  local r = adapter.result(art, remote)
  r.status = status
  log.info(adapter.name .. ": " .. (status == "published" and "published" or "already there, identical"),
    adapter.log_fields and adapter.log_fields(r, art) or { artifact = adapter.label(art) })
  return r
end

--- Looks at every artifact and compares: returns, per artifact, {state = "absent" |
--- "same" | "different" | "unknown" | "error", remote=, remote_digest=, message=, code=}.
--- Sends nothing: pre-flight and the targets use it to find a burned version first.
---@param adapter table
---@param arts table[]
---@param opts table
---@return table[]
function M.check(adapter, arts, opts)
  opts = opts or {}
  local looks = adapter.look(arts, opts)
  local out = {}
  for i, art in ipairs(arts) do
    local l = looks[i]
    if l.err then
      out[i] = { state = "error", message = l.err, code = unreachable_code(l.code) }
    elseif not l.remote then
      out[i] = { state = "absent" }
    else
      local verdict, digest = verify(adapter, art, l.remote, opts)
      out[i] = { state = verdict, remote = l.remote, remote_digest = digest }
    end
  end
  return out
end

-- Reads back after a send. Returns the remote, false (absent), or nil, message, code.
local function look_one(adapter, art, opts)
  local l = adapter.look({ art }, opts)[1]
  if l.err then return nil, l.err, l.code end
  return l.remote or false
end

-- Uploads one artifact known to be absent; every doubtful answer is resolved by looking.
local function send_one(adapter, art, opts, creds, source)
  local key = adapter.label(art)
  local where = adapter.where(opts)
  local b = budget(art, opts)
  local tries = opt(opts, "tries")
  local function settle(remote, status)
    local verdict, digest = verify(adapter, art, remote, opts)
    if verdict == "different" then raise_immutable(adapter, art, digest, opts) end
    if verdict == "unknown" then unverified(adapter, art, opts) end
    return outcome(adapter, art, remote, status)
  end
  for attempt = 1, tries do
    if opts.on_sent then opts.on_sent(key) end  -- recorded before: a late landing is ours
    -- From here the running phase is past the point of no return (relua.release.noreturn).
    require("relua.release.noreturn").published(adapter.name .. ": " .. key)
    local resp, msg, code = adapter.send(art, opts, creds, b.timeouts())
    local status = resp and resp.status
    if resp and resp.ok then
      -- Accepted: read back until it shows (a registry may lag behind its upload API).
      local waited, n = 0, 0
      local limit = math.min(opt(opts, "confirm_timeout"), math.max(0, b.left()))
      while true do
        local remote, m2, c2 = look_one(adapter, art, opts)
        if remote then return settle(remote, "published") end
        if waited >= limit then
          if remote == nil then
            err.raise("maybe_landed", string.format(
              "%s: %s was accepted by %s, but %s cannot be read back (%s): the upload may have landed: re-run to check",
              adapter.name, key, http.redact(opts.url or where), where, m2 or c2),
              { hint = "a re-run looks first: a file that landed is verified, never sent twice" })
          end
          err.raise("unconfirmed", string.format("%s: %s: the upload was accepted but it is not on %s after %.0f s",
            adapter.name, key, where, waited), { hint = "re-run: the file will be verified, not uploaded twice" })
        end
        n = n + 1
        local d = math.min(2, 0.1 * 2 ^ n)
        sleep(d)
        waited = waited + d
      end
    elseif resp and adapter.exists(resp) then
      -- "Already exists": someone (maybe our own earlier attempt) put it there. Look.
      local remote, m2, c2 = look_one(adapter, art, opts)
      if remote then return settle(remote, (attempt > 1 or (opts.sent and opts.sent[key])) and "published" or "skipped_existing") end
      if remote == nil then
        err.raise("maybe_landed", string.format("%s: %s: %s answered HTTP %d (already exists) and %s cannot be read (%s): re-run to check",
          adapter.name, key, http.redact(opts.url or where), status, where, m2 or c2))
      end
      err.raise("conflict", string.format("%s: %s: HTTP %d (already exists), yet it is not on %s",
        adapter.name, key, status, where))
    elseif status == 401 or status == 403 then
      local body = (resp.body or ""):sub(1, 200):gsub("%s+$", "")
      err.raise("auth", string.format("%s: %s %s: HTTP %d%s: %s",
        adapter.name, adapter.method or "POST", http.redact(opts.url or where), status,
        body ~= "" and " (" .. body .. ")" or "",
        adapter.refused and adapter.refused(source) or ("the credentials in " .. source .. " were refused")),
        { hint = adapter.auth_hint and adapter.auth_hint(source, creds, opts) or ("check the token in " .. source), status = status })
    elseif (resp and (status >= 500 or status == 429)) or code == "ambiguous" or code == "timeout" or code == "network" then
      -- The upload may or may not have landed: ask the registry. A look that gets no answer
      -- is tried again (within the budget); the file is sent again only once the registry
      -- says it is not there, never blind.
      local remote, m2, c2 = look_one(adapter, art, opts)
      local looks = 1
      while remote == nil and looks < tries and b.left() > 0 do
        sleep(math.min(M.delay(looks), math.max(0, b.left())))
        remote, m2, c2 = look_one(adapter, art, opts)
        looks = looks + 1
      end
      if remote then return settle(remote, "published") end
      local why = resp and ("HTTP " .. status) or msg
      if remote == nil then
        err.raise("maybe_landed", string.format(
          "%s: %s: the answer to the upload was lost (%s) and %s cannot be read back (%s): the upload may have landed: re-run to check",
          adapter.name, key, why, where, m2 or c2), { hint = "a re-run looks first: a file that landed is verified, never sent twice" })
      end
      if attempt == tries or b.left() <= 0 then
        err.raise(adapter.failed_code or "upload_failed", string.format("%s: %s %s: %s (after %d attempts%s)", adapter.name, adapter.method or "POST",
          http.redact(opts.url or where), why, attempt, b.left() <= 0 and string.format(", %.0f s", b.total) or ""),
          { hint = "re-run later: files already there are verified, not uploaded twice", status = status })
      end
      log.warn(adapter.name .. ": upload failed and it is not there; sending it again",
        { artifact = key, reason = resp and ("HTTP " .. status) or code, attempt = attempt })
      sleep(math.min(M.delay(attempt, resp, opts), math.max(0, b.left())))
    elseif resp then
      err.raise(adapter.failed_code or "upload_failed", string.format("%s: %s %s: HTTP %d for %s: %s", adapter.name, adapter.method or "POST",
        http.redact(opts.url or where), status, key, (resp.body or ""):sub(1, 300):gsub("%s+$", "")), { status = status })
    else
      err.raise(unreachable_code(code), msg, { hint = "check that " .. http.redact(opts.url or where) .. " is reachable" })
    end
  end
end

--- Verify-or-publish artifacts through an adapter. Every artifact is looked at first; if
--- any is already there with different bytes, `immutable` is raised before anything is
--- sent. Then the absent ones are sent one by one. Results are in the order of arts:
--- {status = "published" | "skipped_existing" | "dry_run", ...adapter fields}.
--- opts (besides the adapter's): dry_run, sent (labels this ticket sent before),
--- on_sent(label), tries, confirm_timeout, connect_timeout, stall_timeout, timeout,
--- deadline, per_mib, verify_tries, max_retry_after.
---@param adapter table
---@param arts table[]
---@param opts table
---@return table[]
function M.run(adapter, arts, opts)
  opts = opts or {}
  local results = M._run(adapter, arts, opts)
  for _, fn in ipairs(M.observers) do
    for i, art in ipairs(arts) do
      if results[i] then pcall(fn, { label = adapter.label(art), where = http.redact(opts.url or adapter.where(opts)),
        adapter = adapter.name, status = results[i].status }) end
    end
  end
  return results
end

--- Functions called with {label=, where=, adapter=, status=} for each artifact a publish
--- settled (the job summary of a run lists them: relua.release.report).
---@type fun(outcome:table)[]
M.observers = {}

-- The verify-or-publish itself (M.run tells the observers what it settled).
function M._run(adapter, arts, opts)
  local checks = M.check(adapter, arts, opts)
  local results, todo = {}, {}
  for i, art in ipairs(arts) do
    local c = checks[i]
    if c.state == "error" then
      err.raise(c.code, c.message, { hint = "check that " .. adapter.where(opts) .. " is reachable" })
    elseif c.state == "different" then
      raise_immutable(adapter, art, c.remote_digest, opts)
    end
  end
  for i, art in ipairs(arts) do
    local c = checks[i]
    if c.state == "unknown" then unverified(adapter, art, opts)
    elseif c.state == "same" then
      results[i] = outcome(adapter, art, c.remote, (opts.sent and opts.sent[adapter.label(art)]) and "published" or "skipped_existing")
    else
      todo[#todo + 1] = i
    end
  end
  if #todo == 0 then return results end
  local dry = opts.dry_run or require("relua.dryrun").active()
  if dry then
    for _, i in ipairs(todo) do
      io.stdout:write(require("relua.secret").mask(string.format("  [dry-run] would publish %s to %s\n",
        adapter.label(arts[i]), http.redact(opts.url or adapter.where(opts)))))
      local r = adapter.result(arts[i])
      r.status = "dry_run"
      results[i] = r
    end
    return results
  end
  local creds, source = adapter.credentials(opts)
  for _, i in ipairs(todo) do results[i] = send_one(adapter, arts[i], opts, creds, source) end
  return results
end

return M
