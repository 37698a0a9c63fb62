--- relua.yaml: YAML documents in and out.
-- decode: libyaml's parser (host/yaml.c): mappings -> tables, sequences -> arrays marked
-- with json.array, plain scalars typed per the YAML 1.2 core schema, quoted and block
-- scalars kept as strings, anchors/aliases shared. Errors say NAME:LINE:COLUMN.
-- encode: block style, sorted keys, strings quoted when a plain scalar would read back
-- as something else.
local core = require "relua.core.yaml"
local json = require "relua.json"

local M = {}

local ARRAY_MT = getmetatable(json.array())

--- The YAML null: the same value as json.null. A null mapping value leaves its key out of
--- the table; a null item of a sequence stays in place as yaml.null.
M.null = core.null
assert(M.null == json.null, "relua.yaml: yaml.null must be json.null")

local function check_text(fn, text, name)
  if type(text) ~= "string" then
    error(string.format("bad argument #1 to '%s' (string expected, got %s)", fn, type(text)), 3)
  end
  if name ~= nil and type(name) ~= "string" then
    error(string.format("bad argument #2 to '%s' (string expected, got %s)", fn, type(name)), 3)
  end
end

--- Decodes the first document of a YAML text. An empty text is the null document
--- (yaml.null).
---@param text string
---@param name string? what the text is (a path), used in messages; default "input"
---@return any|nil value
---@return string? message "yaml.decode: NAME:LINE:COLUMN: problem"
---@return string? code "EYAML"
function M.decode(text, name)
  check_text("decode", text, name)
  return core.decode(text, name or "input", false, ARRAY_MT)
end

--- Decodes every document of a YAML stream (`---` separated) into an array.
---@param text string
---@param name string?
---@return any[]|nil documents
---@return string? message
---@return string? code "EYAML"
function M.decode_all(text, name)
  check_text("decode_all", text, name)
  return core.decode(text, name or "input", true, ARRAY_MT)
end

--- Reads and decodes a YAML file (its first document).
---@param path string
---@return any|nil value
---@return string? message "yaml.read: PATH: No such file or directory" or "yaml.read: PATH:LINE:COLUMN: problem"
---@return string? code the errno name ("ENOENT", "EACCES", "EISDIR", ...) or "EYAML"
function M.read(path)
  if type(path) ~= "string" then
    error("bad argument #1 to 'read' (string expected, got " .. type(path) .. ")", 2)
  end
  local text, err, code = require("relua.fs").read(path)
  if not text then return nil, (err:gsub("^fs%.read:", "yaml.read:")), code end
  local v, msg, ycode = core.decode(text, path, false, ARRAY_MT)
  if msg then msg = msg:gsub("^yaml%.decode:", "yaml.read:") end
  return v, msg, ycode
end

-- ------------------------------------------------------------------ encoding

local INDICATORS = "[%-%?:,%[%]{}#&%*!|>'\"%%@`]"

-- Can s be written as a plain scalar and read back as the same string?
local function plain_ok(s)
  if s == "" or s:find("[%c\127]") then return false end
  if type(core.resolve(s)) ~= "string" then return false end   -- "1", "true", "null", ".5"
  if s:find("^" .. INDICATORS) or s:find("^%s") or s:find("%s$") then return false end
  if s:find("^%-%-%-") or s:find("^%.%.%.") then return false end   -- document markers
  if s:find(": ", 1, true) or s:find(" #", 1, true) or s:sub(-1) == ":" then return false end
  return true
end

local ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r",
  ["\0"] = "\\0", ["\27"] = "\\e" }

local function double_quoted(s)
  return '"' .. s:gsub('[%c\\"\127]', function(ch)
    return ESC[ch] or string.format("\\x%02x", ch:byte())
  end) .. '"'
end

-- A string as a scalar on one line (keys, and values that cannot be block scalars).
local function inline_string(s)
  if plain_ok(s) then return s end
  if not s:find("[%c\127]") then return "'" .. s:gsub("'", "''") .. "'" end
  return double_quoted(s)
end

-- Multi-line text as a literal block scalar whose content starts at column col, when
-- that reads back exactly.
local function block_string(s, col)
  local root = col < 2
  if root then col = 2 end
  if not s:find("\n", 1, true) or s:find("[\0-\8\11-\31\127]") or not s:find("%S") then
    return nil
  end
  local body, trail = s:match("^(.-)(\n*)$")
  local chomp = (#trail == 0 and "-") or (#trail == 1 and "") or "+"
  local indicator = ""
  if body:match("^\n*(.)") == " " then      -- leading spaces: say where the content starts
    if root then return nil end             -- not for a whole document: quoted instead
    indicator = "2"
  end
  local pad = string.rep(" ", col)
  local lines = {}
  for line in (body .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = line == "" and "" or pad .. line
  end
  for _ = 2, #trail do lines[#lines + 1] = "" end
  return "|" .. indicator .. chomp .. "\n" .. table.concat(lines, "\n")
end

local function number_text(n)
  if math.type(n) == "integer" then return string.format("%d", n) end
  if n ~= n then return ".nan" end
  if n == math.huge then return ".inf" end
  if n == -math.huge then return "-.inf" end
  local s
  for digits = 15, 17 do
    s = string.format("%." .. digits .. "g", n)
    if tonumber(s) == n then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function scalar_text(v, what)
  local t = type(v)
  if t == "string" then
    if not utf8.len(v) then error("yaml.encode: " .. what .. " is not valid UTF-8 text", 0) end
    return inline_string(v)
  elseif t == "number" then return number_text(v)
  elseif t == "boolean" then return tostring(v)
  elseif v == M.null then return "null"
  end
  error("yaml.encode: cannot encode a " .. t .. " (" .. what .. ")", 0)
end

local KEY_ORDER = { number = 1, boolean = 2, string = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return KEY_ORDER[ta] < KEY_ORDER[tb] end
  if ta == "boolean" then return (not a) and b end
  return a < b
end

-- Keys of t, sorted; is_array when they are exactly 1..n (or t is marked as an array).
local function shape(t, what)
  local keys, n, max = {}, 0, 0
  for k in pairs(t) do
    local tk = type(k)
    if not KEY_ORDER[tk] then error("yaml.encode: cannot encode a key of type " .. tk .. " (" .. what .. ")", 0) end
    if k ~= k then error("yaml.encode: cannot encode a NaN key (" .. what .. ")", 0) end
    n = n + 1
    keys[n] = k
    if math.type(k) == "integer" and k > 0 then
      if k > max then max = k end
    end
  end
  local is_array = (n > 0 and max == n) or (n == 0 and getmetatable(t) == ARRAY_MT)
  if not is_array then table.sort(keys, key_less) end
  return keys, is_array, n
end

local function key_text(k, what)
  if type(k) == "string" then
    if not utf8.len(k) then error("yaml.encode: a key in " .. what .. " is not valid UTF-8 text", 0) end
    local s = inline_string(k)
    if #s > 1000 then error("yaml.encode: a key in " .. what .. " is longer than 1000 bytes", 0) end
    return s
  end
  return scalar_text(k, what)
end

-- Writes v on a line that starts with prefix: "" (the document), "  key:" or "  - ".
-- col: the column of that key or dash (-2 for the document), so nested content goes at
-- col + 2.
local function emit(out, v, prefix, col, what, seen)
  local dash = prefix:sub(-2) == "- "
  local sep = (prefix == "" or dash) and "" or " "
  if type(v) ~= "table" then
    local block = type(v) == "string" and block_string(v, col + 2)
    out[#out + 1] = prefix .. sep .. (block or scalar_text(v, what))
    return
  end
  if seen[v] then error("yaml.encode: a table contains itself (" .. what .. ")", 0) end
  local keys, is_array, n = shape(v, what)
  if n == 0 then
    out[#out + 1] = prefix .. sep .. (is_array and "[]" or "{}")
    return
  end
  seen[v] = true
  local first, ccol
  if prefix == "" then first, ccol = "", 0          -- the document's own mapping/sequence
  elseif dash then first, ccol = prefix, #prefix    -- "- key: v" / "- - v": first entry inline
  else out[#out + 1] = prefix; ccol = col + 2 end   -- "key:" then indented entries
  local pad = string.rep(" ", ccol)
  for i, k in ipairs(keys) do
    local lead = (i == 1 and first) or pad
    if is_array then
      emit(out, v[k], lead .. "- ", ccol, what .. "[" .. k .. "]", seen)
    else
      emit(out, v[k], lead .. key_text(k, what) .. ":", ccol, what .. "." .. tostring(k), seen)
    end
  end
  seen[v] = nil
end

--- Encodes a value as a YAML document: block style, mapping keys sorted, strings quoted
--- when a plain scalar would read back as something else, multi-line strings as literal
--- block scalars. Raises on what YAML cannot hold here (functions, cycles, non-UTF-8).
---@param value any
---@return string
function M.encode(value)
  local out = {}
  emit(out, value, "", -2, "value", {})
  return table.concat(out, "\n") .. "\n"
end

return M
