--- relua.control.commands: `relua pause`, `relua unpause` (with the wake) and
-- `relua controls`. The rules live in relua.control; this file parses, prints and wakes.
local control = require "relua.control"
local errors = require "relua.error"
local json = require "relua.json"
local mask = require("relua.core.secret").mask

local M = {}

local function say(s) io.stdout:write(mask(s), "\n") io.stdout:flush() end
local function complain(s) io.stderr:write(mask(s), "\n") io.stderr:flush() end

local PAUSE_USAGE = "usage: relua pause --lane LANE --sha SHA --reason REASON [--by WHO] [--ticket TICKET]"
local UNPAUSE_USAGE = "usage: relua unpause --lane LANE --sha SHA --reason REASON [--by WHO] [--admit descendants|failed|any] [--no-wake] [--timeout SECONDS]"
local CONTROLS_USAGE = "usage: relua controls [--lane LANE] [--json]"

local function parse(args, allowed, usage)
  local parse_args = require("relua.release")._internal.parse_args
  local ok, o = pcall(parse_args, args, allowed)
  if not ok then
    if errors.is(o) then o.hint = o.hint or usage end
    error(o, 0)
  end
  if #o.positional > 0 then errors.usage("unexpected argument " .. o.positional[1], usage) end
  return o
end

-- A pause or unpause names the failure: without --sha or --reason it is a usage error
-- that prints the command's usage line (relua.control's messages name a bad value).
local function require_failure(kind, o)
  if o.sha == nil then errors.usage(kind .. ": no SHA given (--sha)") end
  if o.reason == nil then errors.usage(kind .. ": no reason given (--reason)") end
end

local function record_json(rec)
  local t = {}
  for k, v in pairs(rec) do t[k] = v end
  return t
end

--- `relua pause --lane L --sha SHA --reason R [--by WHO] [--ticket T]`
---@return integer
function M.pause_command(...)
  local o = parse({ ... }, { lane = "value", sha = "value", reason = "value", by = "value", ticket = "value" }, PAUSE_USAGE)
  require_failure("pause", o)
  local res = control.pause({ lane = o.lane, sha = o.sha, reason = o.reason, by = o.by, ticket = o.ticket })
  local rec = res.record
  if res.effect == "ignored" then
    say(string.format("pause of lane %s for SHA %s (%q) recorded as ignored: %s", rec.lane, rec.sha, rec.reason, res.why))
  else
    say(string.format("lane %s paused: SHA %s, reason %q, by %s at %s", rec.lane, rec.sha, rec.reason, rec.by, rec.at))
  end
  say(control.describe(res.control))
  return 0
end

-- The relua binary running now, for the wake's child.
local function self_exe()
  local exe = require("relua.fs").readlink("/proc/self/exe")
  return exe or (arg and arg[-1]) or "relua"
end

-- Resumes the paused ticket as a child `relua RECIPE TICKET`, bounded by timeout.
-- Returns the exit status of the unpause.
local function wake(ticket, timeout, lane)
  local tlib = require "relua.ticket"
  local t, err = tlib.load(ticket)
  if not t then
    complain(string.format("wake failed: cannot read ticket %s: %s", ticket, err))
    complain(string.format("the recovery is recorded and lane %s stays unpaused; resume the ticket yourself", lane))
    return 1
  end
  if t.summary.status == "done" then
    say(string.format("wake: ticket %s is already done: nothing to resume", ticket))
    return 0
  end
  local path = t.state.recipe.path
  local q = control.quote
  local resume = "relua " .. q(path) .. " " .. ticket
  say(string.format("wake: resuming ticket %s: %s", ticket, resume))
  local proc = require "relua.proc"
  -- the child works on this command's store (--store reaches it as RELUA_STORE, not argv)
  local url = require("relua.store").url
  local res, perr = proc.run({ self_exe(), path, ticket },
    { capture = false, echo = true, timeout = timeout, env = url and { RELUA_STORE = url } or nil })
  if res and res.code == 0 then
    say(string.format("wake: ticket %s resumed and done", ticket))
    return 0
  end
  local why = not res and ("could not start: " .. tostring(perr))
    or res.timed_out and string.format("did not finish within --timeout %s s and was stopped", tostring(timeout))
    or res.code and string.format("exited %d", res.code)
    or string.format("was killed by signal %s", tostring(res.signal))
  complain(string.format("wake failed: the resume of ticket %s %s", ticket, why))
  complain(string.format("the recovery is recorded and lane %s stays unpaused; when the cause is fixed, run: %s", lane, resume))
  return 1
end

--- `relua unpause --lane L --sha SHA --reason R [--by WHO] [--admit MODE] [--no-wake] [--timeout S]`
---@return integer
function M.unpause_command(...)
  local o = parse({ ... }, { lane = "value", sha = "value", reason = "value", by = "value", admit = "value",
    ["no-wake"] = "flag", timeout = "value" }, UNPAUSE_USAGE)
  require_failure("unpause", o)
  local timeout
  if o.timeout ~= nil then
    timeout = tonumber(o.timeout)
    if not timeout or timeout <= 0 then
      errors.usage(string.format("invalid --timeout %q", o.timeout), "give a number of seconds greater than 0")
    end
  end
  local res = control.unpause({ lane = o.lane, sha = o.sha, reason = o.reason, by = o.by, admit = o.admit })
  local rec = res.record
  say(string.format("lane %s unpaused: recovery recorded for SHA %s (%q) by %s at %s", rec.lane, rec.sha, rec.reason, rec.by, rec.at))
  say(control.describe(res.control))
  if o["no-wake"] then
    if rec.ticket then say(string.format("not waking ticket %s (--no-wake)", rec.ticket)) end
    return 0
  end
  if not rec.ticket then
    say("wake: the pause names no ticket: nothing to resume")
    return 0
  end
  return wake(rec.ticket, timeout, rec.lane)
end

--- `relua controls [--lane L] [--json]`: the current control and its history.
---@return integer
function M.controls_command(...)
  local o = parse({ ... }, { lane = "value", json = "flag" }, CONTROLS_USAGE)
  local lane = o.lane or control.DEFAULT_LANE
  local c = control.current(lane)
  if o.json then
    local history = json.array()
    for i, h in ipairs(c.history) do
      history[i] = { record = record_json(h.record), effect = h.effect, why = h.why }
    end
    local pauses = json.array()
    for i, p in ipairs(c.pauses) do pauses[i] = record_json(p) end
    io.stdout:write(json.encode({
      lane = c.lane, state = c.state, pauses = pauses,
      recovery = c.recovery and record_json(c.recovery) or nil, history = history,
    }, { pretty = true }), "\n")
    return 0
  end
  say(control.describe(c))
  if #c.history > 0 then
    say("history (oldest first):")
    for i, h in ipairs(c.history) do
      local r = h.record
      say(string.format("  %3d %s  %-7s %s %q by %s%s -> %s%s", i, r.at, r.kind, r.sha, r.reason, r.by,
        r.ticket and (" ticket " .. r.ticket) or "", h.effect, h.why and (": " .. h.why) or ""))
    end
  end
  return 0
end

return M
