--- relua.secret: values that must never be shown or written in clear.
-- Everything relua writes (the terminal, relua.log, the audit log, the state file, phase
-- output files, error messages and tracebacks) is masked by the host (host/secret.c):
-- declared values, the values of environment variables whose names say they are
-- credentials (*TOKEN*, *PASSWORD*, *SECRET*, *_KEY, *AUTH*, ...), their base64 and
-- percent-encoded forms, URL userinfo, credential query parameters and Authorization
-- values all become `***`. On GitHub Actions each declared value is also registered with
-- `::add-mask::`, so the runner masks it in its own log too.
--   local token = secret.env("PYPI_TOKEN")        -- read, declared, returned
--   secret.declare(vault_reply.password)          -- any value you obtained otherwise
local core = require "relua.core.secret"
local errors = require "relua.error"

local M = {}

local declared = {}   -- name -> true, for pre-flight reports (never the values)

local function github()
  local v = os.getenv("GITHUB_ACTIONS")
  return v ~= nil and v ~= ""
end

-- A workflow command's data: %, CR and LF escaped (the runner unescapes them).
local function gh_escape(s)
  return (s:gsub("%%", "%%25"):gsub("\r", "%%0D"):gsub("\n", "%%0A"))
end

--- Declares a value secret: from now on it (and its base64 and percent-encoded forms) is
--- masked in everything relua writes. Returns the value, so `local t = secret.declare(x)`.
--- On GitHub Actions the value (and each of its lines) is registered with ::add-mask::.
---@param value string
---@param name string?   what it is (PYPI_TOKEN): shown in reports, never the value
---@return string
function M.declare(value, name)
  if type(value) ~= "string" then
    error("bad argument #1 to 'secret.declare' (string expected, got " .. type(value) .. ")", 2)
  end
  if value == "" then error("secret.declare: an empty string cannot be a secret", 2) end
  local fresh = not core.is_secret(value)
  core.add(value)
  if name then declared[name] = true end
  if fresh then M.add_mask(value) end
  return value
end

--- On GitHub Actions, registers value (and each of its lines) with ::add-mask::, so the
--- runner masks it in its log; nothing elsewhere. secret.declare calls it for new values.
---@param value string
function M.add_mask(value)
  if not github() then return end
  io.stdout:write("::add-mask::", gh_escape(value), "\n")
  if value:find("\n", 1, true) then
    for line in value:gmatch("[^\r\n]+") do
      if #line >= 4 then io.stdout:write("::add-mask::", gh_escape(line), "\n") end
    end
  end
  io.stdout:flush()
end

--- Reads an environment variable and declares its value secret. nil when unset or empty.
---@param name string
---@return string?
function M.env(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'secret.env' (string expected, got " .. type(name) .. ")", 2)
  end
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return M.declare(v, name)
end

--- The names declared with a name (never the values).
---@return string[]
function M.names()
  local t = {}
  for k in pairs(declared) do t[#t + 1] = k end
  table.sort(t)
  return t
end

--- s with every secret replaced by ***. Non-strings are turned into strings first.
---@param s any
---@return string
function M.mask(s)
  if type(s) ~= "string" then s = tostring(s) end
  return core.mask(s)
end

--- Is s exactly a secret (a declared or credential-named environment value, or an
--- encoding of one)?
---@param s any
---@return boolean
function M.is_secret(s)
  return type(s) == "string" and core.is_secret(s)
end

--- Does an environment variable's name say it holds a credential (*TOKEN*, ...)?
---@param name string
---@return boolean
M.credential_name = core.credential_name

--- A copy of v with every string in it (values and keys) masked.
---@param v any
---@return any
function M.mask_value(v)
  if type(v) == "string" then return core.mask(v) end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    out[type(k) == "string" and core.mask(k) or k] = M.mask_value(x)
  end
  return setmetatable(out, getmetatable(v))
end

--- What may be written to disk: a value that is (or holds, at any depth) a string equal to
--- a secret is refused (a structured error naming `what`, code "secret"); a string that
--- merely contains one is stored with it masked. Returns the value to store.
---@param v any
---@param what string   e.g. "r.state.TOKEN"
---@return any
function M.guard(v, what)
  local function walk(x, path)
    if type(x) == "string" then
      if core.is_secret(x) then
        errors.raise("secret", string.format(
          "%s: the value is a secret; relua never writes a secret to disk", path),
          { hint = "keep it out of the state: read it where it is needed (relua.secret.env(NAME))", exit = 1 })
      end
      return core.mask(x)
    end
    if type(x) ~= "table" then return x end
    local out = {}
    for k, y in pairs(x) do out[k] = walk(y, path .. "." .. tostring(k)) end
    return setmetatable(out, getmetatable(x))
  end
  return walk(v, what)
end

--- print, with secrets masked (relua installs it as the global print for scripts and recipes).
function M.print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  io.stdout:write(core.mask(table.concat(parts, "\t")), "\n")
end

--- A masker for text written in pieces: m:feed(piece) returns what can be written now
--- (a secret split across two pieces is still masked); m:feed("", "end") the rest.
---@return {feed:fun(self, piece:string, mode:"none"|"idle"|"end"?):string}
M.masker = core.masker

-- Prefixes forges reserve for their own variables: a repository secret named with one is
-- refused (Gitea 1.22: HTTP 400 "invalid secret name"; GitHub the same for GITHUB_).
local RESERVED = { "GITHUB_", "GITEA_" }

--- nil when name can be a repository secret's name; else why not, proposing a name.
---@param name string
---@param project string?  a prefix for the proposal (default "RELEASE")
---@return string?
function M.reserved(name, project)
  if type(name) ~= "string" then return "a secret name must be a string" end
  local up = name:upper()
  for _, p in ipairs(RESERVED) do
    if up:sub(1, #p) == p then
      local prefix = (project or "RELEASE"):upper():gsub("[^%w]", "_")
      local proposal = prefix .. "_" .. name:sub(#p + 1)
      if p == "GITEA_" then proposal = prefix .. "_GITEA_" .. name:sub(#p + 1) end
      return string.format("secret name %s starts with %s, which forges reserve for their own variables " ..
        "(Gitea and GitHub refuse such repository secrets); rename it, e.g. %s", name, p, proposal)
    end
  end
  if not name:match("^[%a_][%w_]*$") then
    return string.format("secret name %q must be letters, digits and _ (not starting with a digit)", name)
  end
  return nil
end

return M
