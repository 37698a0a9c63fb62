--- relua.pep440: Python package versions (PEP 440): parse, normalize, compare, sort.
-- [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local], with the spellings PEP 440 accepts and
-- normalizes (a leading "v", "alpha"/"beta"/"c"/"pre"/"preview", "-1" as a post-release,
-- "rev"/"r", implicit numbers, "-"/"_" separators, any letter case). The order is the
-- specification's (and pip's): epoch, release (trailing zeros ignored), then
-- dev < pre < release < post, then the local version.
local ordering = require "relua.ordering"

local M = {}

---@class relua.pep440.Version
---@field epoch integer
---@field release integer[]
---@field pre {[1]:string, [2]:integer}?    {"a"|"b"|"rc", n}
---@field post integer?
---@field dev integer?
---@field local_ (string|integer)[]?      the local label's parts ("local" is a Lua keyword)
local V = {}
local MT = { __name = "relua.pep440.Version", __index = V }

local BAD = "bad_version"
local PRE = { "preview", "alpha", "beta", "pre", "rc", "a", "b", "c",
              preview = "rc", alpha = "a", beta = "b", pre = "rc", rc = "rc", a = "a", b = "b", c = "rc" }
local PRE_RANK = { a = 1, b = 2, rc = 3 }

local function int(s)
  return math.tointeger(tonumber(s)) or math.maxinteger
end

-- Reads an optional separator, a label from `labels` and an optional number at i.
-- Returns the label, the number (or nil) and the position after, or nil.
local function labelled(s, i, labels)
  local j = i
  if s:sub(j, j):match("[-_.]") then j = j + 1 end
  local word
  for _, w in ipairs(labels) do  -- longest first: "preview" before "pre"
    if s:sub(j, j + #w - 1) == w then word = w; break end
  end
  if not word then return nil end
  j = j + #word
  local k = j
  if s:sub(k, k):match("[-_.]") then k = k + 1 end
  local num = s:match("^%d+", k)
  if num then return labels[word], int(num), k + #num end
  return labels[word], nil, j
end

local POST = { "post", "rev", "r", post = true, rev = true, r = true }
local DEV = { "dev", dev = true }

--- Parses a PEP 440 version ("1.0", "2!1.0rc1.post2.dev3+ubuntu.1"). Returns nil, message,
--- "bad_version" when it is not one.
---@param s string
---@return relua.pep440.Version|nil
---@return string? message
---@return string? code
function M.parse(s)
  if getmetatable(s) == MT then return s end
  if type(s) ~= "string" then
    error(string.format("pep440.parse: bad argument #1 (string expected, got %s)", type(s)), 2)
  end
  local text = s:lower():match("^%s*(.-)%s*$")
  local function bad()
    return nil, string.format("pep440: '%s' is not a PEP 440 version (e.g. 1.2.3, 1.0rc1, "
      .. "2.0.post1, 1.1.dev0, 1!2.0, 1.0+local.1)", s), BAD
  end
  local i = 1
  if text:sub(1, 1) == "v" then i = 2 end
  local v = { epoch = 0, release = {} }
  local e = text:match("^(%d+)!", i)
  if e then
    v.epoch = int(e)
    i = i + #e + 1
  end
  local rel = text:match("^%d+[%d.]*", i)
  if not rel then return bad() end
  rel = rel:match("^(.-)%.*$")  -- a trailing dot belongs to what follows (1.0.post1)
  if rel:find("..", 1, true) then return bad() end
  for n in rel:gmatch("%d+") do v.release[#v.release + 1] = int(n) end
  i = i + #rel
  local label, n, j = labelled(text, i, PRE)
  if label then
    v.pre = { label, n or 0 }
    i = j
  end
  local post = text:match("^%-(%d+)", i)  -- 1.0-1 is 1.0.post1
  if post then
    v.post = int(post)
    i = i + #post + 1
  else
    label, n, j = labelled(text, i, POST)
    if label then
      v.post = n or 0
      i = j
    end
  end
  label, n, j = labelled(text, i, DEV)
  if label then
    v.dev = n or 0
    i = j
  end
  if text:sub(i, i) == "+" then
    local l = text:sub(i + 1)
    if not l:match("^%w+$") and not l:match("^%w[%w._-]*%w$") or l:find("[._-][._-]") then return bad() end
    v.local_ = {}
    for part in l:gmatch("[^._-]+") do
      v.local_[#v.local_ + 1] = part:match("^%d+$") and int(part) or part
    end
    i = #text + 1
  end
  if i <= #text then return bad() end
  return setmetatable(v, MT)
end

--- True when s is a valid PEP 440 version.
---@param s string
---@return boolean
function M.valid(s)
  return type(s) == "string" and M.parse(s) ~= nil
end

--- The normalized form: "1.0RC1" -> "1.0rc1", "1.0-1" -> "1.0.post1", "v1.0" -> "1.0".
---@return string
function V:tostring()
  local t = {}
  if self.epoch ~= 0 then t[#t + 1] = self.epoch .. "!" end
  local r = {}
  for k, n in ipairs(self.release) do r[k] = tostring(n) end
  t[#t + 1] = table.concat(r, ".")
  if self.pre then t[#t + 1] = self.pre[1] .. self.pre[2] end
  if self.post then t[#t + 1] = ".post" .. self.post end
  if self.dev then t[#t + 1] = ".dev" .. self.dev end
  if self.local_ then
    local l = {}
    for k, p in ipairs(self.local_) do l[k] = tostring(p) end
    t[#t + 1] = "+" .. table.concat(l, ".")
  end
  return table.concat(t)
end
MT.__tostring = V.tostring

--- Is it a pre-release (a dev or pre-release)?
---@return boolean
function V:is_prerelease() return self.pre ~= nil or self.dev ~= nil end

local cmp = ordering.cmp

-- The phase of a version among the releases of its number: dev-only < pre < release < post.
local function pre_key(v)
  if v.pre then return 1, PRE_RANK[v.pre[1]], v.pre[2] end
  if v.dev and not v.post then return 0, 0, 0 end  -- 1.0.dev1 sorts before 1.0a1
  return 2, 0, 0
end

local function order(a, b)
  local c = cmp(a.epoch, b.epoch)
  if c ~= 0 then return c end
  local ra, rb = a.release, b.release
  for i = 1, math.max(#ra, #rb) do
    c = cmp(ra[i] or 0, rb[i] or 0)  -- 1.0 == 1.0.0
    if c ~= 0 then return c end
  end
  local p1, p2, p3 = pre_key(a)
  local q1, q2, q3 = pre_key(b)
  c = cmp(p1, q1)
  if c == 0 then c = cmp(p2, q2) end
  if c == 0 then c = cmp(p3, q3) end
  if c ~= 0 then return c end
  c = cmp(a.post or -1, b.post or -1)
  if c ~= 0 then return c end
  c = cmp(a.dev or math.maxinteger, b.dev or math.maxinteger)  -- no dev after any dev
  if c ~= 0 then return c end
  local la, lb = a.local_, b.local_
  if not la or not lb then return cmp(la and 1 or 0, lb and 1 or 0) end
  for i = 1, math.max(#la, #lb) do
    local x, y = la[i], lb[i]
    if x == nil then return -1 end
    if y == nil then return 1 end
    local nx, ny = math.type(x) ~= nil, math.type(y) ~= nil
    if nx ~= ny then return nx and 1 or -1 end  -- a number sorts after a label
    c = cmp(x, y)
    if c ~= 0 then return c end
  end
  return 0
end

local check = ordering.checker("pep440", MT, M)

--- Compares two versions (strings or parsed): -1, 0 or 1. An invalid string raises.
---@param a string|relua.pep440.Version
---@param b string|relua.pep440.Version
---@return integer
function M.compare(a, b)
  return order(check(a, "compare", 1), check(b, "compare", 2))
end

ordering.operators(MT, order, check)

--- Compares with another version: -1, 0 or 1.
function V:compare(other) return order(self, check(other, "compare", 1)) end

--- The normalized string of a version ("1.0.0-RC1" -> "1.0.0rc1"); nil, message when invalid.
---@param s string
---@return string|nil
---@return string? message
---@return string? code
function M.normalize(s)
  local v, msg, code = M.parse(s)
  if not v then return nil, msg, code end
  return v:tostring()
end

--- Sorts version strings in place, ascending (descending when desc). With opts.invalid =
--- "first" (what registries list may not all be PEP 440), strings that are not versions sort
--- before every version, by text; otherwise an invalid string raises.
---@param list string[]
---@param desc boolean?
---@param opts {invalid:string?}?
---@return string[] list
function M.sort(list, desc, opts)
  local keys = {}
  local lenient = opts and opts.invalid == "first"
  for _, s in ipairs(list) do
    if keys[s] == nil then
      if lenient then keys[s] = M.parse(s) or false else keys[s] = check(s, "sort", 1) end
    end
  end
  table.sort(list, function(a, b)
    local ka, kb = keys[a], keys[b]
    local c
    if ka and kb then c = order(ka, kb) else c = cmp(ka and 1 or 0, kb and 1 or 0) end
    if c == 0 then c = cmp(tostring(a), tostring(b)) end
    if desc then return c > 0 end
    return c < 0
  end)
  return list
end

return M
