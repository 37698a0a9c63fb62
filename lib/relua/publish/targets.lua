--- relua.publish.targets: publishing one release to several places (doc/publish.md).
-- A target is a registry (or the forge's release assets), its artifacts, a role and the
-- secrets it needs:
--   { name = "gitea", role = "primary", adapter = "pypi", artifacts = "dist/*",
--     opts = { url = "https://git.example.org/api/packages/acme/pypi/" },
--     secrets = { user = "ACME_GITEA_PYPI_USER", password = "ACME_GITEA_PYPI_TOKEN" } }
-- A primary must succeed: its failure fails the phase. A fallback is best effort: its
-- failure is recorded, shown and logged as a warning, and the ticket ends "done with
-- warnings". Every target is looked at before anything is sent anywhere: one that holds
-- other bytes for this version stops everything (`immutable`, naming it and both digests).
-- Results go to the ticket's state (r.state.publish), so `relua status` shows them and a
-- re-run repeats only what did not succeed; a summary table ends on the terminal and, as
-- Markdown, in $GITHUB_STEP_SUMMARY.
local secret = require "relua.secret"
local err = require "relua.error"
local log = require "relua.log"
local json = require "relua.json"

local M = {}

--- The state key the results are recorded under.
M.STATE_KEY = "publish"

--- Adapters by name: a target's `adapter` is one of these names or an adapter table.
M.adapters = {
  pypi = function() return require("relua.registry.pypi").adapter end,
  npm = function() return require("relua.registry.npm").adapter end,
  forge = function() return require("relua.forge").asset_adapter end,
}

local ROLES = { primary = true, fallback = true }
local DONE = { published = true, skipped_existing = true }

local function bad(msg) err.usage("publish targets: " .. msg, "see doc/publish.md, \"Targets\"") end

local function adapter_of(t)
  if type(t.adapter) == "table" then return t.adapter end
  local f = M.adapters[t.adapter]
  if not f then bad(string.format("target %s: unknown adapter %q (pypi, npm, forge)", t.name, tostring(t.adapter))) end
  return f()
end

--- Checks target declarations; returns them normalised (raises a usage error, exit 2).
---@param list table[]
---@return table[]
function M.declare(list)
  if type(list) ~= "table" or #list == 0 then bad("a non-empty list of targets is expected") end
  local seen, out = {}, {}
  for i, t in ipairs(list) do
    if type(t) ~= "table" then bad(string.format("target %d is a %s, not a table", i, type(t))) end
    if type(t.name) ~= "string" or not t.name:match("^[%w%._%-]+$") then
      bad(string.format("target %d needs a name (letters, digits, . _ -)", i))
    end
    if seen[t.name] then bad("target " .. t.name .. " appears twice") end
    seen[t.name] = true
    local role = t.role or "primary"
    if not ROLES[role] then bad(string.format("target %s: role must be primary or fallback, not %q", t.name, tostring(role))) end
    local arts = t.artifacts
    if type(arts) == "string" then arts = { arts } end
    if type(arts) ~= "table" or #arts == 0 then bad("target " .. t.name .. " has no artifacts") end
    local secrets = t.secrets or {}
    if type(secrets) ~= "table" then bad("target " .. t.name .. ": secrets maps option names to environment variables") end
    out[i] = { name = t.name, role = role, adapter = t.adapter, artifacts = arts, opts = t.opts or {},
               secrets = secrets, label = t.label or t.name }
  end
  return out
end

-- The files of a target: globs expanded, sorted, each at least one file.
local function files_of(t)
  local fs = require "relua.fs"
  local files = {}
  for _, pattern in ipairs(t.artifacts) do
    if pattern:find("[*?%[]") then
      local found = fs.glob(pattern)
      table.sort(found)
      if #found == 0 then
        err.raise("ENOENT", string.format("target %s: no file matches %s", t.name, pattern), { exit = 1 })
      end
      for _, f in ipairs(found) do files[#files + 1] = f end
    else
      files[#files + 1] = pattern
    end
  end
  return files
end

M.adapter_of = adapter_of
M.files_of = files_of

--- The secrets a target needs: {option = value} (declared secret), and the names missing.
---@param t table
---@return table values
---@return string[] missing
function M.secrets_of(t)
  local values, missing = {}, {}
  local keys = {}
  for k in pairs(t.secrets) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = secret.env(t.secrets[k])
    if v then values[k] = v else missing[#missing + 1] = t.secrets[k] end
  end
  return values, missing
end

-- A target's options with its secrets' values; `sources` names where each came from, so
-- a refused credential is named by its variable ("$ACME_FORGE_TOKEN"), not "opts.token".
local function target_opts(t, values)
  local o = {}
  for k, v in pairs(t.opts) do o[k] = v end
  o.sources = {}
  for k, v in pairs(values) do
    o[k] = v
    o.sources[k] = "$" .. t.secrets[k]
  end
  return o
end
--- A declared target's options with the values of its secrets (and `sources`: their variables).
M.opts_of = target_opts

--- Looks at a declared target (an entry of M.declare's result) without sending anything:
--- {adapter=, opts= (with its secrets), arts= (inspected), checks= (publish.check's answers,
--- one per artifact; nil when the look raised), err= (what it raised)}.
---@param t table
---@return table
function M.look(t)
  local publish = require "relua.publish"
  local adapter = adapter_of(t)
  local o = target_opts(t, (M.secrets_of(t)))
  local arts = {}
  for _, f in ipairs(files_of(t)) do arts[#arts + 1] = adapter.inspect(f, t.opts) end
  local ok, checks = pcall(publish.check, adapter, arts, o)
  return { adapter = adapter, opts = o, arts = arts, checks = ok and checks or nil, err = (not ok) and checks or nil }
end

-- The recorded results of the ticket: {[target] = {role=, results = {[label] = {...}}, sent = {...}}}.
local function recorded(r)
  local rec = r and r.state[M.STATE_KEY]
  return type(rec) == "table" and rec or {}
end

local function record(r, rec)
  if r and not r.dry_run then r.state[M.STATE_KEY] = rec end
end

local function one_line(s)
  return (tostring(s or ""):gsub("\n.*", ""))
end

-- What an error means for a result row.
local function failure_status(e)
  if type(e) == "table" and (e.code == "immutable" or e.code == "unverified") then return e.code end
  return "failed"
end

local function failure_detail(e)
  if type(e) ~= "table" then return secret.mask(one_line(e)) end
  local d = one_line(e.message)
  if e.status then d = "HTTP " .. e.status .. ": " .. d end
  return secret.mask(d)
end

--- The summary rows: {target, role, artifact, status, detail}.
---@param rec table  the recorded results (r.state.publish)
---@param order string[]? target names in order
---@return table[]
function M.rows(rec, order)
  local names = order or {}
  if not order then
    for n in pairs(rec) do names[#names + 1] = n end
    table.sort(names)
  end
  local rows = {}
  for _, n in ipairs(names) do
    local t = rec[n]
    if t then
      local labels = {}
      for l in pairs(t.results or {}) do labels[#labels + 1] = l end
      table.sort(labels)
      for _, l in ipairs(labels) do
        local x = t.results[l]
        rows[#rows + 1] = { target = n, role = t.role, artifact = l, status = x.status, detail = x.detail or "" }
      end
    end
  end
  return rows
end

--- The fallback targets that did not get the release (for "done with warnings"): {name, ...}.
---@param rec table
---@return string[]
function M.warnings(rec)
  local out, seen = {}, {}
  for _, w in ipairs(require("relua.ticket").warnings({ state = { [M.STATE_KEY] = rec } })) do
    if not seen[w.target] then seen[w.target] = true; out[#out + 1] = w.target end
  end
  return out
end

local function pad(s, n) return s .. string.rep(" ", n - #s) end

--- The summary as a plain-text table (lines).
---@param rows table[]
---@return string[]
function M.text_table(rows)
  local cols = { "target", "role", "artifact", "status", "detail" }
  local w = {}
  for i, c in ipairs(cols) do
    w[i] = #c
    for _, r in ipairs(rows) do w[i] = math.max(w[i], #tostring(r[c])) end
  end
  local lines = {}
  local head = {}
  for i, c in ipairs(cols) do head[i] = pad(c, w[i]) end
  lines[1] = (table.concat(head, "  "):gsub("%s+$", ""))
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(cols) do cells[i] = pad(tostring(r[c]), w[i]) end
    lines[#lines + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  return lines
end

local function md_cell(s)
  return (tostring(s):gsub("\\", "\\\\"):gsub("|", "\\|"):gsub("[\r\n]+", " "))
end

--- The summary as a Markdown table (a string ending in a newline).
---@param rows table[]
---@param title string?
---@return string
function M.markdown(rows, title)
  local out = {}
  if title then out[#out + 1] = "### " .. md_cell(title) .. "\n\n" end
  out[#out + 1] = "| target | role | artifact | status | detail |\n|---|---|---|---|---|\n"
  for _, r in ipairs(rows) do
    out[#out + 1] = string.format("| %s | %s | %s | %s | %s |\n", md_cell(r.target), md_cell(r.role),
      md_cell(r.artifact), md_cell(r.status), md_cell(r.detail))
  end
  return table.concat(out)
end

-- Shows the summary and appends it to $GITHUB_STEP_SUMMARY.
local function summarize(r, rec, order, title)
  local rows = M.rows(rec, order)
  local say = r and r._say or function(s) io.stdout:write(secret.mask(s), "\n") end
  say("publish summary:")
  for _, line in ipairs(M.text_table(rows)) do say("  " .. line) end
  local path = os.getenv("GITHUB_STEP_SUMMARY")
  if path and path ~= "" then
    local f = io.open(path, "a")
    if f then
      f:write(secret.mask(M.markdown(rows, title)), "\n")
      f:close()
    else
      log.warn("cannot append the publish summary to $GITHUB_STEP_SUMMARY", { path = path })
    end
  end
  return rows
end

local function event(r, name, fields)
  if r and r._store and not r.dry_run then r._store.log(name, fields) end
end

--- Publishes to every target (inside a phase: pass its r). Returns the recorded results
--- ({[target] = {role=, results = {[artifact] = {status=, detail=, digest=}}}}). Raises when
--- a primary fails (the phase fails) or when any target holds other bytes (`immutable`,
--- before anything is sent). A fallback's failure is a warning.
---@param r table?       the phase's r (results recorded in r.state.publish); nil outside a release
---@param list table[]   target declarations
---@param opts {title:string?}?
---@return table
function M.publish(r, list, opts)
  local publish = require "relua.publish"
  opts = opts or {}
  local targets = M.declare(list)
  local rec = recorded(r)
  local order = {}
  local plan = {}
  -- 1. inspect, secrets, and what this ticket already did
  for _, t in ipairs(targets) do
    order[#order + 1] = t.name
    local prev = rec[t.name] or {}
    local entry = { role = t.role, results = prev.results or {}, sent = prev.sent or {} }
    rec[t.name] = entry
    local adapter = adapter_of(t)
    local values, missing = M.secrets_of(t)
    local p = { t = t, adapter = adapter, entry = entry, arts = {}, todo = {} }
    plan[#plan + 1] = p
    for _, path in ipairs(files_of(t)) do
      local art = adapter.inspect(path, t.opts)
      local label = adapter.label(art)
      p.arts[#p.arts + 1] = art
      local done = entry.results[label]
      if not (done and DONE[done.status]) then p.todo[#p.todo + 1] = art end
    end
    if #missing > 0 then
      if t.role == "primary" then
        err.raise("auth", string.format("target %s (primary): the secret %s is not set", t.name, table.concat(missing, ", ")),
          { hint = "set it in the CI secrets (pre-flight checks this before any phase runs)", exit = 1 })
      end
      for _, art in ipairs(p.todo) do
        entry.results[adapter.label(art)] = { status = "skipped_no_token",
          detail = "not set: " .. table.concat(missing, ", ") }
      end
      p.todo = {}
      event(r, "warning", { phase = r and r.phase, target = t.name, msg = "fallback skipped: no token (" .. table.concat(missing, ", ") .. ")" })
      log.warn("publish: fallback target skipped: its secret is not set", { target = t.name, missing = table.concat(missing, ",") })
    end
    p.opts = target_opts(t, values)
    p.opts.sent = entry.sent
    p.opts.dry_run = opts.dry_run or (r and r.dry_run) or nil
  end
  -- 2. look at every target before sending anything
  for _, p in ipairs(plan) do
    if #p.todo > 0 then
      local ok, checks = pcall(publish.check, p.adapter, p.todo, p.opts)
      local raised = not ok and checks or nil  -- the look itself raised: its error is the reason
      if not ok then checks = nil end
      for i, art in ipairs(p.todo) do
        local c = checks and checks[i] or { state = "error", message = failure_detail(raised),
          code = type(raised) == "table" and raised.code or "failed" }
        if c.state == "different" then
          local msg, hint = p.adapter.immutable(art, c.remote_digest, p.adapter.where(p.opts))
          p.entry.results[p.adapter.label(art)] = { status = "immutable", detail = secret.mask(one_line(msg)) }
          record(r, rec)
          summarize(r, rec, order, opts.title)
          err.raise("immutable", string.format("target %s: %s; nothing was sent to any target", p.t.name, msg),
            { hint = hint, target = p.t.name, exit = 1 })
        elseif c.state == "error" and p.t.role == "primary" then
          p.entry.results[p.adapter.label(art)] = { status = "failed", detail = secret.mask(one_line(c.message)) }
          record(r, rec)
          summarize(r, rec, order, opts.title)
          err.raise(c.code or "unreachable", string.format("target %s (primary): %s; nothing was sent to any target",
            p.t.name, one_line(c.message)), { hint = "check that " .. p.adapter.where(p.opts) .. " is reachable", exit = 1 })
        end
      end
    end
  end
  -- 3. send, target by target, in the declared order
  local primary_error
  for _, p in ipairs(plan) do
    if #p.todo > 0 and not primary_error then
      local entry = p.entry
      p.opts.on_sent = function(label)
        entry.sent[label] = true
        record(r, rec)  -- durable before it leaves: a late landing is known to be ours
      end
      for _, art in ipairs(p.todo) do
        local label = p.adapter.label(art)
        local ok, res = pcall(publish.run, p.adapter, { art }, p.opts)
        if ok then
          local x = res[1]
          entry.results[label] = { status = x.status, digest = x.digest, detail = x.url or "" }
          event(r, "publish", { phase = r and r.phase, target = p.t.name, artifact = label, status = x.status })
        else
          entry.results[label] = { status = failure_status(res), detail = failure_detail(res) }
          event(r, p.t.role == "fallback" and "warning" or "publish", { phase = r and r.phase, target = p.t.name,
            artifact = label, status = entry.results[label].status, msg = entry.results[label].detail })
          if p.t.role == "primary" then
            primary_error = { target = p.t.name, e = res }
            break
          end
          log.warn("publish: fallback target failed", { target = p.t.name, artifact = label,
            status = entry.results[label].status })
        end
        record(r, rec)
      end
      record(r, rec)
    end
  end
  record(r, rec)
  summarize(r, rec, order, opts.title)
  if primary_error then
    local e = primary_error.e
    local msg = type(e) == "table" and e.message or tostring(e)
    err.raise(type(e) == "table" and e.code or "failed", string.format("target %s (primary) failed: %s", primary_error.target, msg),
      { hint = type(e) == "table" and e.hint or nil, target = primary_error.target, exit = 1 })
  end
  local warn = M.warnings(rec)
  if #warn > 0 and r then
    r._say(string.format("  warning: fallback target%s %s failed: the ticket will end done with warnings",
      #warn > 1 and "s" or "", table.concat(warn, ", ")))
  end
  return json.decode(json.encode(rec))
end

return M
