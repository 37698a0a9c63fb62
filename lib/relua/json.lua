--- relua.json: JSON that diffs cleanly.
-- encode: sorted keys, integers kept as integers, pretty or compact (C, host/json.c).
-- decode: lua-cjson, with integral numbers given back as Lua integers.
local core = require "relua.core.json"
local cjson = require("cjson").new()   -- a private instance: settings do not leak

local M = {}

--- The JSON null (cjson's), for tables that must hold one.
M.null = cjson.null

--- Marks a table as an array so that an empty one encodes as [] rather than {}.
---@param t table?
---@return table
M.array = core.array

--- Encodes a value: sorted keys, integers as integers. Raises on values JSON cannot hold
--- (functions, NaN, keys that are neither strings nor 1..n, cycles).
---@param value any
---@param opts {pretty:boolean?}?
---@return string
M.encode = core.encode

local function normalize(v)
  local t = type(v)
  if t == "number" then
    return math.tointeger(v) or v
  elseif t == "table" then
    for k, x in pairs(v) do v[k] = normalize(x) end
  end
  return v
end

-- "... at character 12" becomes "line 1, column 12".
local function where(text, message)
  local pos = tonumber(message:match("at character (%d+)"))
  if not pos then return message end
  local line, col = 1, pos
  for nl in text:sub(1, pos - 1):gmatch("()\n") do
    line, col = line + 1, pos - nl
  end
  return (message:gsub(" at character %d+", "")) .. string.format(" at line %d, column %d", line, col)
end

--- Decodes a JSON text. Malformed input is a failure, not a crash.
---@param text string
---@param name string? what the text is (a path), used in the message
---@return any|nil value
---@return string? message "json.decode: NAME: what, at line L, column C"
function M.decode(text, name)
  if type(text) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. type(text) .. ")", 2)
  end
  local ok, v = pcall(cjson.decode, text)
  if not ok then
    return nil, string.format("json.decode: %s: %s", name or "input", where(text, tostring(v))), "EJSON"
  end
  return normalize(v)
end

return M
