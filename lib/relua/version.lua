--- relua.version: relua's version and the versions of what it is built on.
local core = require "relua.core.version"

local M = {}

--- relua's own version, e.g. "0.1.0".
M.relua = core.relua
--- "Lua 5.4"
M.lua = _VERSION
--- "Lua 5.4.4"
M.lua_release = core.lua

-- libgit2 and libcurl are lazy modules: their versions are read (loading them) only when asked.
local function libraries()
  pcall(require, "relua.core.git")
  pcall(require, "relua.core.http")
  local git, curl = core.libraries()
  M.libgit2, M.libcurl = git or "?", curl or "?"
end
--- libgit2 and libcurl versions, e.g. "1.5.1", "7.88.1" ("?" if a module is missing);
--- reading either loads both libraries.
---@type string, string
setmetatable(M, { __index = function(_, k)
  if k == "libgit2" or k == "libcurl" then
    libraries()
    return rawget(M, k)
  end
end })

--- The binary's own path (symlinks resolved), when it could be found.
---@type string?
M.self = core.self

--- The folder of relua's shared data (the shipped recipes, playbooks and type
--- definitions): ../share/relua beside the binary, else the DATADIR it was built for.
---@return string?
function M.datadir()
  local candidates = {}
  if core.self then candidates[1] = core.self:gsub("/[^/]*$", "") .. "/../share/relua" end
  candidates[#candidates + 1] = core.datadir
  for _, d in ipairs(candidates) do
    local f = io.open(d .. "/recipes")
    if f then
      f:close()
      return (d:gsub("/[^/]+/%.%./", "/"))
    end
  end
  return nil
end

--- One line for --version.
---@return string
function M.describe()
  return string.format("relua %s (%s, libgit2 %s, libcurl %s)", M.relua, M.lua_release, M.libgit2, M.libcurl)
end

return M
