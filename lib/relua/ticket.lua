--- relua.ticket: a ticket's ledger as tables, for `relua status/log/list` and the REPL.
-- `require("relua.ticket").load("1234")` reads the ticket's state and audit log from its
-- store (relua.store: the folder .relua by default) without taking the ticket's lock and
-- without writing.
local core = require "relua.core.ledger"

local M = {}

--- The folder that holds the ledgers: $RELUA_HOME/releases, else ./.relua/releases.
---@param home string?  overrides $RELUA_HOME
---@return string
function M.dir(home)
  if home and home ~= "" then return (home:gsub("/+$", "")) .. "/releases" end
  return core.dir()
end

--- True when s is a valid ticket: 1-64 characters of A-Z a-z 0-9 . _ - (not "." or "..").
---@param s any
---@return boolean
M.valid = core.valid_ticket

local function unquote(s)
  return (s:gsub("\\(x%x%x)", function(h) return string.char(tonumber(h:sub(2), 16)) end)
    :gsub("\\(.)", { n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\" }))
end

--- Parses one audit-log line into {time=, ticket=, phase=, event=, rc=, msg=, ...}.
---@param line string
---@return table
function M.parse_line(line)
  local ev = { time = line:match("^(%S+)") }   -- nil for a line that does not start with one
  local pos = #(ev.time or "") + 1
  while pos <= #line do
    local k, s = line:match("^%s+([%w_%-%.]+)=()", pos)
    if not k then break end
    local v, e
    if line:sub(s, s) == '"' then
      local i = s + 1
      while i <= #line do
        local c = line:sub(i, i)
        if c == "\\" then i = i + 2
        elseif c == '"' then break
        else i = i + 1 end
      end
      v, e = unquote(line:sub(s + 1, i - 1)), i + 1
    else
      local raw
      raw, e = line:match("^(%S*)()", s)
      v = raw
    end
    ev[k] = (k == "rc" and math.tointeger(tonumber(v))) or v
    pos = e
  end
  return ev
end

local SUCCEEDED = { published = true, skipped_existing = true }

--- What went wrong without failing the ticket: the fallback targets of relua.publish that
--- did not get the release, as a sorted list of {target=, artifact=, status=, detail=}: the
--- ticket's `warnings` field (written when a run completes), else read from r.state.publish.
---@param state table
---@return table[]
function M.warnings(state)
  if type(state.warnings) == "table" then return state.warnings end
  return M.publish_warnings(state)
end

--- The warnings as r.state.publish (doc/publish.md) says them (see M.warnings).
---@param state table
---@return table[]
function M.publish_warnings(state)
  local out = {}
  local rec = type(state.state) == "table" and state.state.publish
  if type(rec) ~= "table" then return out end
  for name, t in pairs(rec) do
    if type(t) == "table" and t.role == "fallback" and type(t.results) == "table" then
      for label, x in pairs(t.results) do
        if type(x) == "table" and not SUCCEEDED[x.status] then
          out[#out + 1] = { target = name, artifact = label, status = x.status, detail = x.detail }
        end
      end
    end
  end
  table.sort(out, function(a, b)
    if a.target ~= b.target then return a.target < b.target end
    return a.artifact < b.artifact
  end)
  return out
end

--- Where a ticket stands, from its state: {status=, phase=, rc=, msg=, from=, warnings=}.
--- status is "done", "done with warnings" (a fallback target did not get the release:
--- `warnings` says which), "failed", "interrupted" (a phase was running when the run died),
--- "running" (holder given), "reverted", "pending" or "partly done". `from` is the phase a
--- resume starts at (nil when all is done).
---@param state table
---@param holder table?  the lock's holder when a run is in progress
---@return table
function M.summary(state, holder)
  local s = { status = "done" }
  local all_done, any_done, any_reverted = true, false, false
  for _, p in ipairs(state.phases) do
    if p.status ~= "done" then
      all_done = false
      if not s.from then s.from = p.name end
    else
      any_done = true
    end
    if p.status == "reverted" then any_reverted = true end
    if (p.status == "failed" or p.status == "running") and not s.phase then
      s.phase, s.rc, s.msg = p.name, p.rc, p.msg
      s.status = p.status == "failed" and "failed" or "interrupted"
    end
  end
  if holder then s.status = "running"
  elseif all_done then
    s.warnings = M.warnings(state)
    s.status = #s.warnings > 0 and "done with warnings" or "done"
  elseif not s.phase then  -- (a failed or interrupted phase has set the status above)
    if any_reverted then s.status = "reverted"
    elseif any_done then s.status = "partly done"
    else s.status = "pending" end
  end
  return s
end

--- The phases the state records `running` whose run could not record how they ended
--- (the store refused the state write: a full disk). The run put the phase's last event
--- in the audit log alone, with unrecorded="why": {phase=, event= ("failed" or "done"),
--- rc=, msg=, cause=, time=} for each, in phase order. log: parsed events (parse_line).
---@param state table
---@param log table[]
---@return table[]
function M.unrecorded(state, log)
  local running, last, out = {}, {}, {}
  for _, p in ipairs(state.phases) do
    if p.status == "running" then running[p.name] = true end
  end
  if next(running) == nil then return out end
  for _, ev in ipairs(log) do
    if ev.phase and running[ev.phase] then last[ev.phase] = ev end
  end
  for _, p in ipairs(state.phases) do
    local ev = last[p.name]
    if ev and ev.unrecorded and (ev.event == "failed" or ev.event == "done") then
      out[#out + 1] = { phase = p.name, event = ev.event, rc = ev.rc, msg = ev.msg, cause = ev.unrecorded,
        time = ev.time }
    end
  end
  return out
end

--- Loads a ticket: {id=, state=, log=array of events, events_text=, paths={state=, out=,
--- dir=}, holder=, summary=, store=, unrecorded= (M.unrecorded, when no run holds it)}. opts.store: the store (default: relua.store's, or the folder
--- opts.home). Fails with code "EINVAL" (bad ticket), "ENOENT" (no such ticket),
--- "corrupt", or the store's code.
---@param id string
---@param opts {home:string?, store:userdata?}?
---@return table|nil ticket
---@return string? message
---@return string? code
function M.load(id, opts)
  opts = opts or {}
  if not core.valid_ticket(id) then
    return nil, string.format("invalid ticket %q: use 1-64 characters of A-Z a-z 0-9 . _ -", tostring(id)), "EINVAL"
  end
  local store = opts.store or require("relua.store").open(opts.home)
  local out = store:outdir(id)
  local paths = { state = store:where(id), out = out, dir = out:match("^(.*)/[^/]*$") or "." }
  local state, err, code = store:read(id)
  if not state then
    if code == "ENOENT" then
      return nil, string.format("no release recorded for ticket %s (looked for %s)", id, paths.state), "ENOENT"
    end
    return nil, err, code
  end
  local text, terr, tcode = store:events(id)
  if not text then return nil, terr, tcode end
  local events = {}
  for line in text:gmatch("[^\n]+") do events[#events + 1] = M.parse_line(line) end
  local holder = store:holder(id)
  return {
    id = id, state = state, log = events, events_text = text, paths = paths, holder = holder, store = store,
    summary = M.summary(state, holder), unrecorded = holder == nil and M.unrecorded(state, events) or {},
  }
end

--- Every ticket in the store, sorted: {ticket=, status=, updated=, phase=, rc=,
--- error=} (error set for a state that cannot be read).
---@param opts {home:string?, store:userdata?}?
---@return table[]
function M.list(opts)
  opts = opts or {}
  local store = opts.store or require("relua.store").open(opts.home)
  local names, err, code = store:tickets()
  if not names then require("relua.store").fail(err, code) end
  local out = {}
  for _, id in ipairs(names) do
    local t, lerr = M.load(id, { store = store })
    if t then
      out[#out + 1] = {
        ticket = id, status = t.summary.status, updated = t.state.updated,
        phase = t.summary.phase, rc = t.summary.rc, recipe = t.state.recipe.path,
      }
    else
      out[#out + 1] = { ticket = id, status = "unreadable", error = lerr }
    end
  end
  return out
end

return M
