--- relua.version: relua's version and the versions of what it is built on.
local core = require "relua.core.version"

local M = {}

--- relua's own version, e.g. "0.1.0".
M.relua = core.relua
--- "Lua 5.4"
M.lua = _VERSION
--- "Lua 5.4.4"
M.lua_release = core.lua

-- libgit2 and libcurl are loaded on first use: load them to read their versions.
pcall(require, "relua.core.git")
pcall(require, "relua.core.http")
--- libgit2 and libcurl versions, e.g. "1.5.1", "7.88.1" ("?" if a module is missing).
M.libgit2, M.libcurl = core.libraries()
M.libgit2 = M.libgit2 or "?"
M.libcurl = M.libcurl or "?"

--- One line for --version.
---@return string
function M.describe()
  return string.format("relua %s (%s, libgit2 %s, libcurl %s)", M.relua, M.lua_release, M.libgit2, M.libcurl)
end

return M
