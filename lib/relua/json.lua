--- relua.json: JSON that diffs cleanly.
-- encode: sorted keys, integers kept as integers, pretty or compact (C, host/json.c).
-- decode: strict RFC 8259 (C, host/json.c), integral numbers given back as Lua integers.
local core = require "relua.core.json"

local M = {}

--- The JSON null (the same value as cjson.null: a NULL light userdata).
M.null = require("cjson").null

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

--- Decodes a JSON text, strictly (RFC 8259): NaN/Infinity, hex, leading zeros, numbers
--- past a double's range, invalid UTF-8, control characters in strings, duplicate keys
--- and anything after the value are refused. Integral numbers come back as integers.
--- Malformed input is a failure, not a crash.
---@param text string
---@param name string? what the text is (a path), used in the message
---@return any|nil value
---@return string? message "json.decode: NAME: what at line L, column C"
---@return string? code "EJSON"
function M.decode(text, name)
  if type(text) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. type(text) .. ")", 2)
  end
  return core.decode(text, name or "input")
end

return M
