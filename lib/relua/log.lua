--- relua.log: leveled messages on stderr with logfmt fields.
--   log.info("published", {package = "wiki", version = "1.2.0"})
--   -> info: published package=wiki version=1.2.0
-- Colour only when stderr is a terminal, never with NO_COLOR (or TERM=dumb). With
-- GITHUB_ACTIONS set, warn/error lines become ::warning::/::error:: annotations and
-- groups become ::group::/::endgroup::. RELUA_LOG_LEVEL (debug|info|warn|error, default
-- info) hides the levels below it.
local proc = require "relua.proc"
local mask = require("relua.core.secret").mask  -- secrets never reach the terminal

local M = {}

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }
local COLOURS = { debug = "\27[2m", info = "\27[36m", warn = "\27[33m", error = "\27[1;31m" }
local RESET = "\27[0m"

local threshold  -- nil: read RELUA_LOG_LEVEL on first use

local function current_threshold()
  if threshold == nil then
    local env = os.getenv("RELUA_LOG_LEVEL")
    if env and env ~= "" and not LEVELS[env:lower()] then
      require("relua.error").usage(string.format("RELUA_LOG_LEVEL=%s is not a level", env),
        "set it to debug, info, warn or error (or unset it: info)")
    end
    threshold = env and LEVELS[env:lower()] or LEVELS.info
  end
  return threshold
end

--- Sets the lowest level shown ("debug", "info", "warn", "error"); returns the old one.
---@param name string?
---@return string
function M.level(name)
  local old
  for k, v in pairs(LEVELS) do if v == current_threshold() then old = k end end
  if name ~= nil then
    local n = LEVELS[name]
    if not n then error("log.level: unknown level '" .. tostring(name) .. "' (debug, info, warn, error)", 2) end
    threshold = n
  end
  return old
end

local function use_colour()
  local nc = os.getenv("NO_COLOR")
  if nc ~= nil and nc ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return proc.isatty("stderr")
end

local function github()
  local v = os.getenv("GITHUB_ACTIONS")
  return v ~= nil and v ~= ""
end

-- logfmt: bare when safe, else double-quoted with \" \\ \n \r \t escaped.
local function value(v)
  local s = tostring(v)
  if s ~= "" and not s:find('[%s="\\%c]') then return s end
  return '"' .. s:gsub('[\\"%c]', function(c)
    if c == "\\" then return "\\\\" elseif c == '"' then return '\\"'
    elseif c == "\n" then return "\\n" elseif c == "\r" then return "\\r"
    elseif c == "\t" then return "\\t" end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end

--- The logfmt string of a table: `key=value` pairs, sorted by key, values quoted when
--- they hold spaces, quotes, '=' or control characters. Nested tables show as their
--- tostring; use json for structure.
---@param t table?
---@return string
function M.fields(t)
  if t == nil then return "" end
  if type(t) ~= "table" then
    error("bad argument #1 to 'log.fields' (table expected, got " .. type(t) .. ")", 2)
  end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end
    parts[i] = (k:find('[%s="]') and value(k) or k) .. "=" .. value(v)
  end
  return table.concat(parts, " ")
end

-- GitHub's workflow commands need %, CR and LF escaped in the message.
local function gh_escape(s)
  return (s:gsub("%%", "%%25"):gsub("\r", "%%0D"):gsub("\n", "%%0A"))
end

local function emit(level, msg, fields)
  if LEVELS[level] < current_threshold() then return end
  if type(msg) ~= "string" then msg = tostring(msg) end
  if fields ~= nil and type(fields) ~= "table" then
    error("bad argument #2 to 'log." .. level .. "' (table expected, got " .. type(fields) .. ")", 3)
  end
  local f = M.fields(fields)
  local text = mask(f ~= "" and (msg .. " " .. f) or msg)
  local line
  if github() and (level == "warn" or level == "error") then
    line = (level == "warn" and "::warning::" or "::error::") .. gh_escape(text)
  elseif use_colour() then
    line = COLOURS[level] .. level .. RESET .. ": " .. text
  else
    line = level .. ": " .. text
  end
  io.stderr:write(line, "\n")
end

--- A debug line (hidden unless RELUA_LOG_LEVEL=debug or log.level("debug")).
---@param msg string
---@param fields table?
function M.debug(msg, fields) emit("debug", msg, fields) end

--- An info line.
---@param msg string
---@param fields table?
function M.info(msg, fields) emit("info", msg, fields) end

--- A warning (::warning:: in GitHub Actions).
---@param msg string
---@param fields table?
function M.warn(msg, fields) emit("warn", msg, fields) end

--- An error line (::error:: in GitHub Actions). It only reports: it does not raise.
---@param msg string
---@param fields table?
function M.error(msg, fields) emit("error", msg, fields) end

--- Opens a group of lines (a foldable ::group:: in GitHub Actions, a "== name" header
--- elsewhere). Close it with log.endgroup().
---@param name string
function M.group(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'log.group' (string expected, got " .. type(name) .. ")", 2)
  end
  name = mask(name)
  if github() then
    io.stderr:write("::group::", gh_escape(name), "\n")
  elseif use_colour() then
    io.stderr:write("\27[1m== ", name, RESET, "\n")
  else
    io.stderr:write("== ", name, "\n")
  end
end

--- Closes the group opened by log.group.
function M.endgroup()
  if github() then io.stderr:write("::endgroup::\n") end
end

return M
