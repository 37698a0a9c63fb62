--- relua.control: delivery controls. A lane (a branch's delivery, default "main") is
-- paused when its release fails and unpaused by an operator to land a repair. Controls are
-- append-only records kept by the store (relua.store's lane records, written under the
-- lane's lock after `decide` has seen the current records); the lane's current control is
-- computed from them by one function, `reconcile`, whose rules are the table in
-- doc/controls.md. An unpause creates a recovery carrying the exact SHA and reason it
-- resumed: a later pause that merely restates that failure is recorded as ignored, so a
-- stale worker cannot pause the lane again (../shared/seeds/004).
local errors = require "relua.error"

local M = {}

M.SCHEMA = 1
M.DEFAULT_LANE = "main"  -- relua.control.gate.DEFAULT_LANE

--- What an unpause lets through while its recovery owns the failed SHA: descendants of
--- the failed SHA only (default), also the failed SHA itself, or any SHA.
M.ADMIT = { descendants = true, failed = true, any = true }

-- ------------------------------------------------------------------ validation

local gate = require "relua.control.gate"

--- Checks a lane name: 1-64 characters of A-Z a-z 0-9 . _ - (not "." or "..", not
--- starting with "-"), as the store names things.
M.valid_lane = gate.valid_lane

--- Checks a commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits, lower case.
---@param sha any
---@return boolean
function M.valid_sha(sha)
  return type(sha) == "string" and (#sha == 40 or #sha == 64) and sha:match("^[0-9a-f]+$") ~= nil
end

--- Checks a reason: one line of 1-500 characters, not only blanks, no control characters.
---@param reason any
---@return boolean
function M.valid_reason(reason)
  return type(reason) == "string" and #reason <= 500 and reason:match("%S") ~= nil
    and not reason:match("[%c]")
end

local function bad_input(message, hint)
  errors.raise("usage", message, { exit = errors.EXIT.usage, hint = hint })
end

-- The checked and normalised fields of a control request; raises a usage error (exit 2).
local function check_request(kind, o)
  if type(o) ~= "table" then bad_input("relua.control." .. kind .. ": a table of options is expected") end
  local lane = o.lane or M.DEFAULT_LANE
  if not M.valid_lane(lane) then
    bad_input(string.format("invalid lane %q", tostring(lane)),
      "a lane is 1-64 characters of A-Z a-z 0-9 . _ - (e.g. main)")
  end
  local sha = type(o.sha) == "string" and o.sha:lower() or o.sha
  if sha == nil then bad_input(kind .. ": no SHA given", "pass the full commit id with --sha") end
  if not M.valid_sha(sha) then
    bad_input(string.format("%s: malformed SHA %q", kind, tostring(o.sha)),
      "give the full 40-character commit id (git rev-parse HEAD), not an abbreviation or a branch name")
  end
  local reason = type(o.reason) == "string" and o.reason:match("^%s*(.-)%s*$") or o.reason
  if reason == nil or reason == "" then
    bad_input(kind .. ": the reason is empty", "say why, e.g. --reason ci-failed (the same words the pause used, for an unpause)")
  end
  if not M.valid_reason(reason) then
    bad_input(string.format("%s: invalid reason %q", kind, tostring(o.reason)),
      "a reason is one line of at most 500 characters")
  end
  local by = o.by or M.whoami()
  if type(by) ~= "string" or not by:match("%S") or #by > 200 or by:match("%c") then
    bad_input(string.format("%s: invalid --by %q", kind, tostring(o.by)), "name who acts: one line, at most 200 characters")
  end
  local ticket = o.ticket
  if ticket ~= nil and not require("relua.core.ledger").valid_ticket(ticket) then
    bad_input(string.format("%s: invalid ticket %q", kind, tostring(ticket)),
      "a ticket is 1-64 characters of A-Z a-z 0-9 . _ -")
  end
  local admit = o.admit
  if admit ~= nil and not M.ADMIT[admit] then
    bad_input(string.format("unpause: unknown --admit %q", tostring(admit)),
      "use descendants (the default), failed (also the failed SHA itself) or any")
  end
  return { lane = lane, sha = sha, reason = reason, by = by, ticket = ticket, admit = admit }
end

--- Who acts, when not told: $RELUA_BY, else USER@host.
---@return string
function M.whoami()
  local by = os.getenv("RELUA_BY")
  if by and by ~= "" then return by end
  local host
  local f = io.open("/proc/sys/kernel/hostname", "r")
  if f then host = f:read("l") f:close() end
  return (os.getenv("USER") or os.getenv("LOGNAME") or "unknown") .. "@" .. (host or "localhost")
end

local FIELDS = {
  v = "number", kind = "string", lane = "string", sha = "string", reason = "string",
  by = "string", at = "string", ticket = "string", ignored = "boolean", why = "string",
  admit = "string",
}

--- Checks a stored record. Returns the record, or nil and what is wrong with it.
---@param rec any
---@param lane string?  the lane it was listed under
---@return table|nil
---@return string? problem
function M.check_record(rec, lane)
  if type(rec) ~= "table" then return nil, "it is a " .. type(rec) .. ", not a record" end
  for k, want in pairs(FIELDS) do
    if rec[k] ~= nil and type(rec[k]) ~= want then
      return nil, string.format("field %s is a %s, not a %s", k, type(rec[k]), want)
    end
  end
  if rec.v ~= M.SCHEMA then return nil, "unknown schema v=" .. tostring(rec.v) end
  if rec.kind ~= "pause" and rec.kind ~= "unpause" then
    return nil, string.format("unknown kind %q", tostring(rec.kind))
  end
  if not M.valid_lane(rec.lane) then return nil, string.format("invalid lane %q", tostring(rec.lane)) end
  if lane and rec.lane ~= lane then return nil, string.format("lane %q listed under lane %q", rec.lane, lane) end
  if not M.valid_sha(rec.sha) then return nil, string.format("malformed sha %q", tostring(rec.sha)) end
  if not M.valid_reason(rec.reason) then return nil, "empty or invalid reason" end
  if not rec.by or not rec.by:match("%S") then return nil, "no by" end
  if not rec.at or not rec.at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d") then
    return nil, string.format("invalid time %q", tostring(rec.at))
  end
  if rec.ticket ~= nil and not require("relua.core.ledger").valid_ticket(rec.ticket) then
    return nil, string.format("invalid ticket %q", rec.ticket)
  end
  if rec.kind == "pause" then
    if rec.admit ~= nil then return nil, "a pause has no admit" end
    if rec.ignored and not rec.why then return nil, "an ignored pause without why" end
  else
    if rec.ignored ~= nil or rec.why ~= nil then return nil, "an unpause is never ignored" end
    if rec.admit ~= nil and not M.ADMIT[rec.admit] then return nil, string.format("unknown admit %q", rec.admit) end
  end
  return rec
end

-- ------------------------------------------------------------------ reconciliation

local function key(sha, reason) return sha .. "\0" .. reason end

--- The effect a record has on a control (the rules table of doc/controls.md), without
--- changing it: "pauses", "ignored" (with why), "resumes" or "refused" (with why: an
--- unpause that names no open pause; never written, and without effect if found).
---@param c table  a control from M.reconcile
---@param rec table
---@return string effect
---@return string? why
function M.effect(c, rec)
  local k = key(rec.sha, rec.reason)
  if rec.kind == "pause" then
    local resumed = c.resumed[k]
    if resumed then                                                  -- rule 2
      return "ignored", string.format("restates the failure the unpause by %s at %s resumed (same lane, SHA and reason)",
        resumed.by, resumed.at)
    end
    for _, p in ipairs(c.pauses) do                                  -- rule 3
      if key(p.sha, p.reason) == k then
        return "ignored", string.format("the lane is already paused for this SHA and reason (by %s at %s)", p.by, p.at)
      end
    end
    return "pauses"                                                  -- rules 1 and 4
  end
  for _, p in ipairs(c.pauses) do                                    -- rule 5
    if key(p.sha, p.reason) == k then return "resumes" end
  end
  if #c.pauses == 0 then                                             -- rule 6
    return "refused", string.format("lane %s is not paused", c.lane)
  end
  return "refused", string.format("lane %s is not paused for SHA %s with reason %q", c.lane, rec.sha, rec.reason)
end

--- Applies one record to a control (in place); returns the effect and why.
local function apply(c, rec)
  local effect, why = M.effect(c, rec)
  if effect == "pauses" then
    c.pauses[#c.pauses + 1] = rec
    c.state = "paused"
  elseif effect == "resumes" then
    local k = key(rec.sha, rec.reason)
    for i, p in ipairs(c.pauses) do
      if key(p.sha, p.reason) == k then table.remove(c.pauses, i) break end
    end
    c.resumed[k] = rec
    c.recovery = rec
    if #c.pauses == 0 then c.state = "running" end
  end
  return effect, why
end

--- The current control of a lane from its records, in the order they were written:
--- {lane=, state="running"|"paused", pauses={open pause records, oldest first},
---  recovery=the unpause that resumed the lane last (or nil), resumed={[sha.."\0"..reason]=unpause},
---  history={{record=, effect=, why=}, ...}}.
--- This is the only place the rules live (doc/controls.md).
---@param records table[]
---@param lane string?
---@return table
function M.reconcile(records, lane)
  local c = { lane = lane or (records[1] and records[1].lane) or M.DEFAULT_LANE, state = "running",
    pauses = {}, resumed = {}, recovery = nil, history = {} }
  for _, rec in ipairs(records) do
    local effect, why = apply(c, rec)
    c.history[#c.history + 1] = { record = rec, effect = effect, why = why }
  end
  return c
end

-- ------------------------------------------------------------------ admission

--- Whether a release may start on a lane: returns true, or false and a verdict table
--- {code="paused"|"recovery", message=, hint=}. `release` = {sha=, ticket=}; `descends`
--- (a function(ancestor, sha) -> boolean|nil, message) is called only during a recovery.
---@param c table  a control from M.reconcile
---@param release {sha:string?, ticket:string?}
---@param descends fun(ancestor:string, sha:string):(boolean|nil, string?)
---@return boolean
---@return table|string|nil verdict or why admitted
function M.admit(c, release, descends)
  if c.state == "paused" then
    local p = c.pauses[#c.pauses]
    local lines = {}
    for _, q in ipairs(c.pauses) do
      lines[#lines + 1] = string.format("  paused: SHA %s, reason %q, by %s at %s%s", q.sha, q.reason, q.by, q.at,
        q.ticket and (" (ticket " .. q.ticket .. ")") or "")
    end
    return false, {
      code = "paused",
      message = string.format("lane %s is paused: %s\n%s", c.lane, p.reason, table.concat(lines, "\n")),
      hint = string.format("when the cause is understood, resume the lane: relua unpause --lane %s --sha %s --reason %s",
        c.lane, p.sha, M.quote(p.reason)),
    }
  end
  local u = c.recovery
  if not u then return true, "no control" end
  if release.ticket and u.ticket == release.ticket then return true, "the ticket the recovery resumed" end
  local admit = u.admit or "descendants"
  if admit == "any" then return true, "the recovery admits any SHA" end
  local sha = release.sha
  if sha == u.sha then
    if admit == "failed" then return true, "the recovery admits the failed SHA" end
  else
    local ok, err = descends(u.sha, sha)
    if ok == nil then
      return false, { code = "ancestry", message = string.format("lane %s: cannot tell whether %s descends from the failed SHA %s: %s",
        c.lane, sha, u.sha, tostring(err)) }
    end
    if ok then return true, "descends from the failed SHA " .. u.sha end
  end
  return false, {
    code = "recovery",
    message = string.format("lane %s is recovering from the failure on SHA %s (%q, resumed by %s at %s): "
      .. "only releases of SHAs that descend from it are admitted, and this release's SHA %s %s",
      c.lane, u.sha, u.reason, u.by, u.at, tostring(sha), sha == u.sha and "is the failed SHA itself" or "does not descend from it"),
    hint = "release the repair (a commit on top of the failed SHA); to admit other SHAs, the unpause says so: relua unpause ... --admit failed|any",
  }
end

--- Quotes a string for a shell command line shown to a person (relua.proc's quoting).
---@param s string
---@return string
function M.quote(s) return require("relua.proc").quote(s) end

-- ------------------------------------------------------------------ storage

-- The store the command works with (relua.store: --store, $RELUA_STORE, else the folder);
-- raises a structured error when it cannot be opened.
local function store()
  return require("relua.store").open()
end

local CORRUPT_HINT = "relua left it untouched: inspect it, restore it, or move it away"

-- Where a lane's records are, for messages: the file of a folder store
-- (HOME/lanes/LANE.jsonl, one record a line), else the store's description.
local function location(st, lane)
  local d = st:describe()
  local dir = d:match("^folder (.+)$")
  if dir then return (dir:gsub("/releases$", "")) .. "/lanes/" .. lane .. ".jsonl" end
  return d
end

local function checked(records, lane, where)
  for i, rec in ipairs(records) do
    local ok, problem = M.check_record(rec, lane)
    if not ok then
      errors.raise("corrupt", string.format("control record %d of lane %s is corrupt: %s (in %s)", i, lane, problem, where),
        { exit = errors.EXIT.usage, hint = CORRUPT_HINT })
    end
  end
  return records
end

local function store_failed(err, code, where)
  if errors.is(err) then error(err, 0) end
  if code == "corrupt" then
    errors.raise("corrupt", string.format("%s (in %s)", tostring(err), where), { exit = errors.EXIT.usage, hint = CORRUPT_HINT })
  end
  errors.raise(code or "store", tostring(err), { exit = errors.EXIT.failed })
end

--- A lane's records, oldest first (copies). A corrupt record is refused (exit 2) with
--- its location. st: an open store (default: the command's).
---@param lane string?
---@param st userdata?
---@return table[]
function M.records(lane, st)
  lane = lane or M.DEFAULT_LANE
  if not M.valid_lane(lane) then bad_input(string.format("invalid lane %q", tostring(lane))) end
  local own <close> = not st and store() or nil
  st = st or own
  local list, err, code = st:controls(lane)
  if not list then store_failed(err, code, location(st, lane)) end
  return checked(list, lane, location(st, lane))
end

--- The current control of a lane (M.reconcile of its records).
---@param lane string?
---@param st userdata?  an open store (default: the command's)
---@return table
function M.current(lane, st)
  lane = lane or M.DEFAULT_LANE
  return M.reconcile(M.records(lane, st), lane)
end

-- Appends a record through the store: `decide` gets the lane's control computed from the
-- current records, under the lane's lock, and returns the record to write (or nil to
-- write nothing) and a verdict, which append returns.
local function append(lane, decide)
  local s <close> = store()
  local where = location(s, lane)
  local verdict
  local rec, err, code = s:control_append(lane, function(records)
    checked(records, lane, where)
    local r
    r, verdict = decide(M.reconcile(records, lane))
    return r
  end)
  if rec == nil and err ~= nil then store_failed(err, code, where) end
  return verdict
end

-- Writes a control change into the affected ticket's audit log: through the running
-- phase's r when the change comes from inside a release, else through the ticket's
-- ledger (which a run in progress holds: then a warning says the event is missing).
local function note_ticket(ticket, r, rec, effect, why)
  if not ticket then return end
  local fields = { kind = rec.kind, lane = rec.lane, sha = rec.sha, reason = rec.reason, by = rec.by,
    effect = effect, why = why }
  if r and r.ticket == ticket and rawget(r, "_store") then
    rawget(r, "_store").log("control", require("relua.secret").mask_value(fields))
    return
  end
  local function warn(problem)
    io.stderr:write(require("relua.core.secret").mask(string.format(
      "relua: warning: the control change is not in ticket %s's audit log: %s\n", ticket, tostring(problem))))
  end
  local st <close> = store()
  local state, err, code = st:read(ticket)
  if not state then
    if code ~= "ENOENT" then warn(err) end
    return
  end
  local lg, lerr = st:ledger(ticket)
  if not lg then return warn(lerr) end
  lg:log("control", require("relua.secret").mask_value(fields))
  lg:close()
end

-- Inside a dry run (relua RECIPE TICKET --dry-run), a control change only says what it
-- would do.
local function dry_run(kind, f)
  local d = package.loaded["relua.dryrun"]
  if not (d and d.active()) then return nil end
  io.stdout:write(require("relua.core.secret").mask(string.format("  [dry-run] would %s lane %s for SHA %s (%q)\n",
    kind, f.lane, f.sha, f.reason)))
  io.stdout:flush()
  return { effect = "dry_run" }
end

local function new_record(kind, f)
  return {
    v = M.SCHEMA, kind = kind, lane = f.lane, sha = f.sha, reason = f.reason, by = f.by,
    at = require("relua.core.ledger").now(), ticket = f.ticket, admit = f.admit,
  }
end

--- Pauses a lane. opts: lane (default "main"), sha, reason, by (default $RELUA_BY or
--- USER@host), ticket (the ticket whose failure this is), r (inside a phase: the run's
--- r, whose ticket is then the default and whose audit log gets the event). Returns {record=, effect=,
--- why=, control=}: effect "pauses", or "ignored" when the pause restates a failure an
--- unpause resumed (or one the lane is already paused for); either way it is recorded.
---@param opts {lane:string?, sha:string, reason:string, by:string?, ticket:string?}
---@return table
function M.pause(opts)
  if type(opts) == "table" and opts.r ~= nil and opts.ticket == nil then
    opts = setmetatable({ ticket = opts.r.ticket }, { __index = opts })
  end
  local f = check_request("pause", opts)
  f.admit = nil
  local dry = dry_run("pause", f)
  if dry then return dry end
  local result = append(f.lane, function(c)
    local rec = new_record("pause", f)
    local effect, why = M.effect(c, rec)
    if effect == "ignored" then rec.ignored, rec.why = true, why end
    apply(c, rec)
    return rec, { record = rec, effect = effect, why = why, control = c }
  end)
  note_ticket(result.record.ticket, opts.r, result.record, result.effect, result.why)
  return result
end

--- Unpauses a lane: records a recovery carrying the SHA and reason it resumes, which must
--- be those of an open pause. opts: lane, sha, reason, by, admit ("descendants" default,
--- "failed", "any"), r (a run's r or a playbook's ctx holding the resumed ticket: its
--- audit log gets the event through it). Returns {record=, effect="resumes", control=, resumed=the pause}; an
--- unpause that names no open pause writes nothing and raises (exit 2) explaining the
--- lane's current control.
---@param opts {lane:string?, sha:string, reason:string, by:string?, admit:string?, r:table?}
---@return table
function M.unpause(opts)
  local f = check_request("unpause", opts)
  if opts.ticket ~= nil then bad_input("unpause: the ticket is the paused one's; do not pass one") end
  local dry = dry_run("unpause", f)
  if dry then return dry end
  local result = append(f.lane, function(c)
    local rec = new_record("unpause", f)
    local effect, why = M.effect(c, rec)
    if effect ~= "resumes" then
      return nil, { effect = effect, why = why, control = c }
    end
    local resumed
    for _, p in ipairs(c.pauses) do
      if p.sha == rec.sha and p.reason == rec.reason then resumed = p end
    end
    rec.ticket = resumed.ticket
    apply(c, rec)
    return rec, { record = rec, effect = effect, control = c, resumed = resumed }
  end)
  if result.effect ~= "resumes" then
    errors.raise("usage", "unpause refused: " .. result.why .. "\n" .. M.describe(result.control),
      { exit = errors.EXIT.usage, hint = #result.control.pauses > 0
        and "unpause names the SHA and reason of an open pause (relua controls --lane " .. f.lane .. " lists them)"
        or "nothing to unpause" })
  end
  note_ticket(result.record.ticket, opts.r, result.record, result.effect)
  return result
end

-- ------------------------------------------------------------------ the release engine

--- The release SHA of a run: recipe.sha(r) when the recipe gives one, else HEAD of the
--- repository around the working folder. `r` is read-only here: {ticket=, lane=,
--- recipe=, state=the values recorded so far (a copy)}.
local function release_sha(recipe, r)
  local sha, err
  if recipe.sha ~= nil then
    local ok, v = pcall(recipe.sha, r)
    if not ok then
      errors.raise("usage", string.format("lane %s: the recipe's sha function failed: %s", r.lane,
        errors.is(v) and v.message or tostring(v)), { exit = errors.EXIT.usage })
    end
    sha = v
  else
    local git = require "relua.git"
    local repo <close>, gerr = git.discover(".")
    if not repo then
      errors.raise("usage", string.format("lane %s: cannot find the release SHA (HEAD): %s", r.lane, gerr),
        { exit = errors.EXIT.usage, hint = "run in the repository being released, or give the recipe a sha = function(r) ... end" })
    end
    local head = repo:head()
    sha, err = head and head.id, "HEAD has no commit"
    if not sha then errors.raise("usage", string.format("lane %s: cannot find the release SHA: %s", r.lane, err), { exit = errors.EXIT.usage }) end
  end
  sha = type(sha) == "string" and sha:lower() or sha
  if not M.valid_sha(sha) then
    errors.raise("usage", string.format("lane %s: the recipe's release SHA %q is not a full commit id", r.lane, tostring(sha)),
      { exit = errors.EXIT.usage, hint = "sha = function(r) must return the full 40-character commit id" })
  end
  return sha
end

-- Is `sha` a descendant of (or equal to) `ancestor` in the repository around the
-- working folder: true/false, or nil and why.
local function descends(ancestor, sha)
  local git = require "relua.git"
  local repo <close>, err = git.discover(".")
  if not repo then return nil, err end
  local ok, e = repo:is_ancestor(ancestor, sha)
  if ok == nil then return nil, e end
  return ok
end

--- Admission of a release (called by relua.release before a run takes its ticket): reads
--- the recipe's lane's control; a paused lane, or a recovery that does not admit the
--- release's SHA, is refused (exit 3) with what to do. Returns {lane=, sha=, why=} (sha
--- only when the lane has controls: a lane without any costs one read).
---@param recipe table
---@param ticket string
---@param values table?  the ticket's recorded state values
---@param st userdata?  the run's open store
---@return table
function M.admission(recipe, ticket, values, st)
  local lane = recipe.lane or M.DEFAULT_LANE
  local c = M.current(lane, st)
  if #c.history == 0 then return { lane = lane } end
  local sha
  if c.state ~= "paused" then
    local copy = {}
    for k, v in pairs(values or {}) do copy[k] = v end
    sha = release_sha(recipe, { ticket = ticket, lane = lane, recipe = recipe, state = copy })
  end
  local ok, verdict = M.admit(c, { sha = sha, ticket = ticket }, descends)
  if not ok then
    errors.raise(verdict.code == "ancestry" and "ancestry" or "refused", verdict.message,
      { exit = verdict.code == "ancestry" and errors.EXIT.failed or errors.EXIT.refused, hint = verdict.hint })
  end
  return { lane = lane, sha = sha, why = verdict }
end

--- The lane's current control in words (a few lines).
---@param c table
---@return string
function M.describe(c)
  local lines = {}
  if c.state == "paused" then
    lines[1] = string.format("lane %s: paused", c.lane)
    for _, p in ipairs(c.pauses) do
      lines[#lines + 1] = string.format("  paused for SHA %s, reason %q, by %s at %s%s", p.sha, p.reason, p.by, p.at,
        p.ticket and (", ticket " .. p.ticket) or "")
    end
    lines[#lines + 1] = string.format("  resume: relua unpause --lane %s --sha %s --reason %s", c.lane,
      c.pauses[#c.pauses].sha, M.quote(c.pauses[#c.pauses].reason))
  elseif c.recovery then
    local u = c.recovery
    lines[1] = string.format("lane %s: running, recovering from SHA %s (%q), unpaused by %s at %s%s",
      c.lane, u.sha, u.reason, u.by, u.at, u.ticket and (", ticket " .. u.ticket) or "")
    local admit = u.admit or "descendants"
    lines[2] = "  admitted: " .. (admit == "any" and "any SHA"
      or admit == "failed" and "the failed SHA and SHAs that descend from it"
      or "SHAs that descend from the failed SHA") .. (u.ticket and (", and ticket " .. u.ticket) or "")
  else
    lines[1] = string.format("lane %s: running (%s)", c.lane, #c.history == 0 and "no controls recorded" or "no recovery")
  end
  return table.concat(lines, "\n")
end

return M
