--- relua.ci: how a release shows in a CI log, and colour on a terminal.
-- On GitHub Actions (GITHUB_ACTIONS=true) each phase is a `::group::`, a failed phase an
-- `::error title=...::` annotation carrying the resume command, credentials found in the
-- environment are registered with `::add-mask::`, and a job summary is appended to
-- $GITHUB_STEP_SUMMARY. On GitLab CI (GITLAB_CI=true) each phase is a collapsible
-- section. Elsewhere the lines are plain. Everything goes through the secret masker.
local mask = require("relua.core.secret").mask

local M = {}

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

--- "github", "gitlab" or nil (plain), from the environment.
---@return "github"|"gitlab"|nil
function M.kind()
  if env("GITHUB_ACTIONS") == "true" then return "github" end
  if env("GITLAB_CI") == "true" then return "gitlab" end
  return nil
end

-- ------------------------------------------------------------------ colour

local COLOURS = { red = "\27[1;31m", yellow = "\27[33m", green = "\27[32m", bold = "\27[1m", dim = "\27[2m" }

--- Does a stream get colour? Only a terminal, never with NO_COLOR (any value) or TERM=dumb.
---@param stream "stdout"|"stderr"
---@return boolean
function M.colour_on(stream)
  if os.getenv("NO_COLOR") ~= nil and os.getenv("NO_COLOR") ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return require("relua.proc").isatty(stream)
end

--- s in colour (red, yellow, green, bold, dim) when the stream is a terminal, else s.
---@param stream "stdout"|"stderr"
---@param colour string
---@param s string
---@return string
function M.paint(stream, colour, s)
  if not M.colour_on(stream) then return s end
  return COLOURS[colour] .. s .. "\27[0m"
end

-- ------------------------------------------------------------------ workflow commands

-- A workflow command's message: %, CR and LF escaped.
local function gh_data(s)
  return (s:gsub("%%", "%%25"):gsub("\r", "%%0D"):gsub("\n", "%%0A"))
end

-- A workflow command's property value: also ':' and ','.
local function gh_prop(s)
  return (gh_data(s):gsub(":", "%%3A"):gsub(",", "%%2C"))
end

-- A GitLab section name: letters, digits, '_', '.', '-'.
local function section_name(s)
  return "relua_" .. s:gsub("[^%w_%.%-]", "_")
end

local function out(s)
  io.stdout:write(mask(s), "\n")
  io.stdout:flush()
end

--- On GitHub Actions, registers the values of credential-named environment variables
--- (*TOKEN*, *PASSWORD*, ...: relua.secret.credential_name) with ::add-mask::, so the
--- runner masks them in everything a step prints, relua or not. Nothing elsewhere.
function M.register_secrets()
  if M.kind() ~= "github" then return end
  local secret = require "relua.secret"
  local environ = require("relua.core.proc").environ()
  local names = {}
  for name in pairs(environ) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local v = environ[name]
    if #v >= 4 and secret.credential_name(name) then secret.add_mask(v) end
  end
end

--- Opens the group of lines of a phase (::group:: / a GitLab section / nothing).
---@param name string the phase
---@param title string the header line
function M.group_start(name, title)
  local k = M.kind()
  if k == "github" then out("::group::" .. gh_data(title))
  elseif k == "gitlab" then
    out(string.format("\27[0Ksection_start:%d:%s[collapsed=true]\r\27[0K%s", os.time(), section_name(name), title))
  end
end

--- Closes it.
---@param name string
function M.group_end(name)
  local k = M.kind()
  if k == "github" then out("::endgroup::")
  elseif k == "gitlab" then out(string.format("\27[0Ksection_end:%d:%s\r\27[0K", os.time(), section_name(name))) end
end

--- An error annotation (GitHub: ::error title=...::, shown on the run's page).
---@param title string
---@param message string
function M.error(title, message)
  if M.kind() == "github" then out("::error title=" .. gh_prop(mask(title)) .. "::" .. gh_data(mask(message))) end
end

--- Appends markdown to the job summary ($GITHUB_STEP_SUMMARY on GitHub Actions). Returns
--- true when written; nil, message when the file cannot be written; false elsewhere.
---@param markdown string
---@return boolean|nil, string?
function M.summary(markdown)
  local path = M.kind() == "github" and env("GITHUB_STEP_SUMMARY")
  if not path then return false end
  local f, err = io.open(path, "a")
  if not f then return nil, err end
  f:write(mask(markdown))
  f:close()
  return true
end

return M
