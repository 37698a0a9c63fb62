--- relua.pretty: Lua values as text for people (the REPL prints results with it).
-- Tables are laid out on one line when they fit, else one entry per line; keys are sorted
-- (the array part first, in order); nesting is cut at a depth limit (`{...}`); a table that
-- contains itself is marked `<cycle: table: 0x...>`; long strings are truncated with their
-- size shown. The output is for reading, not for loading back.
local M = {}

---@class relua.pretty.Options
---@field depth integer?       levels of nested tables shown (default 4); deeper ones print as {...}
---@field width integer?       line width for laying a table out on one line (default 80)
---@field indent integer?      spaces per level (default 2)
---@field max_string integer?  bytes of a string shown before it is cut (default 200)
---@field max_items integer?   entries of a table shown before "... (N more)" (default 100)

M.defaults = { depth = 4, width = 80, indent = 2, max_string = 200, max_items = 100 }

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r",
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\v"] = "\\v" }

local function escape(s)
  return (s:gsub('[%c\\"\127]', function(c) return ESC[c] or string.format("\\%d", c:byte()) end))
end

local function quote(s, max)
  if #s <= max then return '"' .. escape(s) .. '"' end
  local cut = max
  -- do not cut a UTF-8 sequence in half
  while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return string.format('"%s"... (%d bytes)', escape(s:sub(1, cut)), #s)
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  local oa, ob = TYPE_ORDER[ta] or 4, TYPE_ORDER[tb] or 4
  if oa ~= ob then return oa < ob end
  if ta == "number" or ta == "string" then
    if a ~= a then return false end    -- NaN keys cannot exist, but be total anyway
    return a < b
  end
  if ta == "boolean" then return (not a) and b end
  return tostring(a) < tostring(b)
end

local function is_null(v)
  return type(v) == "userdata" and tostring(v) == "userdata: (nil)"  -- json.null / yaml.null
end

local function scalar(v, o)
  local t = type(v)
  if t == "string" then return quote(v, o.max_string) end
  if t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    if v ~= v then return "nan" end
    return tostring(v)
  end
  if is_null(v) then return "null" end
  if t == "userdata" or t == "table" then
    local mt = getmetatable(v)
    if type(mt) == "table" and mt.__tostring then
      local ok, s = pcall(tostring, v)
      if ok and type(s) == "string" then return s end
    end
  end
  return tostring(v)
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

local format

-- Entries of t as strings, array part first. col: the column of t's own indentation.
local function entries(t, o, level, open, col)
  local items, n = {}, 0
  local count = 0
  while rawget(t, count + 1) ~= nil do count = count + 1 end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= count) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  local total = count + #keys
  local inner = col + o.indent
  for i = 1, count do
    if n >= o.max_items then break end
    n = n + 1
    items[n] = format(rawget(t, i), o, level + 1, open, inner, inner)
  end
  for _, k in ipairs(keys) do
    if n >= o.max_items then break end
    local ks
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then ks = k
    else ks = "[" .. (type(k) == "table" and tostring(k) or scalar(k, o)) .. "]" end
    n = n + 1
    -- a nested table laid out on several lines is indented by its level, not by its key's
    -- length: deep records do not drift right
    items[n] = ks .. " = " .. format(rawget(t, k), o, level + 1, open, inner, inner + #ks + 3)
  end
  if total > n then items[#items + 1] = string.format("... (%d more)", total - n) end
  return items
end

-- col: the indentation of v's lines; used: the column where v starts (for the one-line fit).
function format(v, o, level, open, col, used)
  if type(v) ~= "table" or has_tostring(v) then return scalar(v, o) end
  if open[v] then return "<cycle: " .. tostring(v) .. ">" end
  if next(v) == nil then return "{}" end
  if level >= o.depth then return "{...}" end
  open[v] = true
  local items = entries(v, o, level, open, col)
  open[v] = nil
  local one = "{ " .. table.concat(items, ", ") .. " }"
  if #one + (used or col) <= o.width and not one:find("\n", 1, true) then return one end
  local pad = string.rep(" ", col + o.indent)
  return "{\n" .. pad .. table.concat(items, ",\n" .. pad) .. "\n" .. string.rep(" ", col) .. "}"
end

--- Formats a value for reading.
---@param value any
---@param opts relua.pretty.Options?
---@return string
function M.format(value, opts)
  local o = {}
  for k, d in pairs(M.defaults) do
    local v = opts and opts[k]
    if v ~= nil and math.type(v) ~= "integer" then
      error("bad argument #2 to 'format' (field '" .. k .. "' must be an integer)", 2)
    end
    o[k] = v or d
  end
  return format(value, o, 0, {}, 0, 0)
end

--- Prints each value formatted, separated by tabs, on stdout.
---@param ... any
function M.print(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = M.format((select(i, ...))) end
  io.stdout:write(table.concat(out, "\t"), "\n")
end

return M
