--- relua.release.report: what a run (or a revert) tells the world besides its progress
-- lines: each phase as a group of the CI log, a failed phase as an annotation, the job
-- summary (relua.ci), and with --json the final summary on stdout (doc/json.md).
local ci = require "relua.ci"
local json = require "relua.json"
local clock = require("relua.core.ledger").clock

local M = {}

local Report = {}
Report.__index = Report

--- A report for one command run. o: ticket, path (the recipe as given), json (write the
--- summary as JSON on stdout: progress then goes to stderr), what ("run" or "revert").
---@param o {ticket:string, path:string?, json:boolean?, what:string?}
function M.new(o)
  local self = setmetatable({ ticket = o.ticket, path = o.path, what = o.what or "run", seen = {}, order = {} }, Report)
  if o.json then self.out = require("relua.core.fs").stdout_to_stderr() end
  ci.register_secrets()
  -- what the publish core settles during the run, for the summary
  self.published = {}
  local ok, publish = pcall(require, "relua.publish")
  if ok and type(publish) == "table" and type(publish.observers) == "table" then
    self.observer = function(outcome) self.published[#self.published + 1] = outcome end
    self.observers = publish.observers
    self.observers[#self.observers + 1] = self.observer
  end
  return self
end

local function round(x) return math.floor(x * 1000 + 0.5) / 1000 end

function Report:entry(name)
  local e = self.seen[name]
  if not e then
    e = { name = name }
    self.seen[name] = e
    self.order[#self.order + 1] = name
  end
  return e
end

--- A phase (or its revert) starts: its group opens.
function Report:start(name)
  local e = self:entry(name)
  e.t0, e.open = clock(), true
  ci.group_start(name, (self.what == "revert" and "revert of phase " or "phase ") .. name)
end

--- It finished.
function Report:done(name)
  local e = self:entry(name)
  e.seconds, e.ran = round(clock() - (e.t0 or clock())), true
  if e.open then ci.group_end(name) e.open = false end
end

--- A phase the command will go through, in order (a revert lists them before it starts).
function Report:planned(name)
  self:entry(name)
end

--- It was not run (done earlier, or no revert).
function Report:skipped(name, why)
  self:entry(name).skipped = why
end

--- Its group closes, if open: before the failure is printed, so a CI log shows the failure
--- outside the folded section (GitLab has no annotation to show it otherwise).
function Report:close(name)
  local e = self:entry(name)
  if e.open then ci.group_end(name) e.open = false end
end

--- It failed: the group closes and the failure is annotated with what to run next.
---@param name string
---@param rc integer
---@param message string
---@param next_step string  what to do next: the terminal's hint lines
function Report:failed(name, rc, message, next_step)
  local e = self:entry(name)
  e.ran, e.rc, e.message = true, rc, message
  if e.t0 then e.seconds = round(clock() - e.t0) end
  self:close(name)
  ci.error(string.format("relua: %s of phase %s failed (rc=%d)", self.what == "revert" and "revert" or "run", name, rc),
    message .. "\n" .. next_step)
  self.failure = { phase = name, rc = rc, message = message }
end

-- The phases as the summary shows them: the recorded status, and what this run did.
function Report:phases(state)
  local list = json.array()
  local recorded = {}
  for _, p in ipairs(state and state.phases or {}) do recorded[p.name] = p end
  local names = {}
  if self.what == "revert" then names = self.order
  else for _, p in ipairs(state and state.phases or {}) do names[#names + 1] = p.name end end
  for _, name in ipairs(names) do
    local e, p = self.seen[name] or {}, recorded[name] or {}
    list[#list + 1] = { name = name, status = p.status or "pending", ran = e.ran or false,
      seconds = e.seconds, rc = e.rc, skipped = e.skipped }
  end
  return list
end

local ICON = { done = "✅", failed = "❌", reverted = "↩️", running = "⏳" }

-- The job summary's markdown.
function Report:markdown(s)
  local lines = {}
  local head = s.status == "failed" and string.format("failed in phase %s (rc=%d)", s.failed.phase, s.failed.rc)
    or s.status
  lines[#lines + 1] = string.format("### relua: %s of ticket `%s`: %s", self.what == "revert" and "revert" or "release",
    s.ticket, head)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "| phase | status | duration |"
  lines[#lines + 1] = "|---|---|---|"
  for _, p in ipairs(s.phases) do
    local status = (ICON[p.status] and ICON[p.status] .. " " or "") .. p.status
    if p.rc then status = status .. " (rc=" .. p.rc .. ")" end
    if p.skipped then status = status .. " (" .. p.skipped .. ")" end
    lines[#lines + 1] = string.format("| %s | %s | %s |", p.name, status, p.seconds and string.format("%.2fs", p.seconds) or "")
  end
  if s.failed then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "```\n" .. s.failed.message .. "\n```"
    if s.hints then  -- the terminal's lines, the commands in them as code
      for _, l in ipairs(s.hints) do
        for _, cmd in ipairs({ s.resume, s.revert }) do
          local at = l:find(cmd, 1, true)
          if at then l = l:sub(1, at - 1) .. "`" .. cmd .. "`" .. l:sub(at + #cmd) end
        end
        lines[#lines + 1] = l .. "  "
      end
    elseif s.retry then
      lines[#lines + 1] = "Fix the cause, then run: `" .. s.retry .. "`"
    end
  end
  if s.published then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "| artifact | where | outcome |"
    lines[#lines + 1] = "|---|---|---|"
    for _, p in ipairs(s.published) do
      lines[#lines + 1] = string.format("| %s | %s | %s |", tostring(p.label), tostring(p.where), tostring(p.status))
    end
  end
  return table.concat(lines, "\n") .. "\n\n"
end

--- The run is over: the summary goes to the job summary and, with --json, to stdout.
--- extra: status (overrides), nothing_to_do, resume, revert (nil past the point of no
--- return), retry, hints (the lines the terminal showed after a failure).
---@param exit integer
---@param state table?  the ticket's state after the run
---@param extra table?
function Report:finish(exit, state, extra)
  extra = extra or {}
  if self.observers then  -- the run is over: stop collecting
    for i = #self.observers, 1, -1 do
      if self.observers[i] == self.observer then table.remove(self.observers, i) end
    end
    self.observers = nil
  end
  local status = extra.status
  if not status then
    if exit == 0 then status = self.what == "revert" and "reverted" or "done"
    elseif exit == 130 or exit == 143 then status = "interrupted"
    else status = "failed" end
  end
  local s = {
    ticket = self.ticket, recipe = self.path, what = self.what, status = status, exit = exit,
    phases = self:phases(state), failed = self.failure, nothing_to_do = extra.nothing_to_do or false,
    resume = extra.resume, revert = extra.revert, retry = extra.retry,
    hints = extra.hints and json.array({ table.unpack(extra.hints) }) or nil,
    published = #self.published > 0 and self.published or nil,
  }
  local ok, err = ci.summary(self:markdown(s))
  if ok == nil then io.stderr:write("relua: warning: the job summary: ", tostring(err), "\n") end
  if self.out then
    self.out:write(json.encode(s, { pretty = true }), "\n")
    self.out:close()
    self.out = nil
  end
  return s
end

return M
