--- relua.semver: Semantic Versioning 2.0.0 (https://semver.org): parse, compare, bump.
-- A version is a table {major=, minor=, patch=, prerelease={...}, build={...}} with methods
-- and comparison operators; numeric pre-release identifiers are integers, the others
-- strings. Precedence ignores build metadata (spec item 11). `compare_loose` is the order
-- of tag names that are not all SemVer ("v1.10", "1.0.0.1", "release-2"): relua.git sorts
-- tags with it. PEP 440 (Python) versions are relua.pep440's.
local ordering = require "relua.ordering"

local M = {}

---@class relua.semver.Version
---@field major integer
---@field minor integer
---@field patch integer
---@field prerelease (string|integer)[]
---@field build string[]
local V = {}
local MT = { __name = "relua.semver.Version", __index = V }

local BAD = "bad_version"
local MAXDIGITS = 18  -- a numeric part must fit a Lua integer

-- One numeric part without leading zeros, as an integer; nil when s is not one.
local function number(s)
  if not s:match("^%d+$") or (#s > 1 and s:sub(1, 1) == "0") or #s > MAXDIGITS then return nil end
  return math.tointeger(tonumber(s))
end

-- Dot-separated identifiers of [0-9A-Za-z-]; pre-release numbers as integers (no leading zero).
local function identifiers(s, numeric)
  local out = {}
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if part == "" or part:find("[^%w%-]") then return nil end
    if numeric and part:match("^%d+$") then
      local n = number(part)
      if not n then return nil end
      out[#out + 1] = n
    else
      out[#out + 1] = part
    end
  end
  return out
end

local function new(major, minor, patch, pre, build)
  return setmetatable({ major = major, minor = minor, patch = patch, prerelease = pre or {},
                        build = build or {} }, MT)
end

--- Parses a SemVer 2.0 version ("1.2.3", "1.0.0-rc.1+build.5"). `opts.prefix` is stripped
--- first when present (e.g. "v" for tags). Returns nil, message, "bad_version" otherwise.
---@param s string
---@param opts {prefix:string?}?
---@return relua.semver.Version|nil
---@return string? message
---@return string? code
function M.parse(s, opts)
  if type(s) ~= "string" then
    if getmetatable(s) == MT then return s end
    error(string.format("semver.parse: bad argument #1 (string expected, got %s)", type(s)), 2)
  end
  local text = s
  local prefix = opts and opts.prefix
  if prefix and prefix ~= "" and s:sub(1, #prefix) == prefix then text = s:sub(#prefix + 1) end
  local core, rest = text:match("^([%d.]+)(.*)$")
  local maj, min, pat
  if core then maj, min, pat = core:match("^(%d+)%.(%d+)%.(%d+)$") end
  maj, min, pat = maj and number(maj), min and number(min), pat and number(pat)
  if not (maj and min and pat) then
    return nil, string.format("semver: '%s' is not a version MAJOR.MINOR.PATCH (numbers without "
      .. "leading zeros, e.g. 1.2.3)", s), BAD
  end
  local pre, build = {}, {}
  local pre_s, build_s = rest:match("^%-([^+]*)(.*)$")
  if pre_s then
    pre = identifiers(pre_s, true)
    rest = build_s
  end
  if rest ~= "" then
    local b = rest:match("^%+(.*)$")
    build = b and identifiers(b, false)
    if not build then pre = nil end
  end
  if not pre then
    return nil, string.format("semver: '%s' has a bad pre-release or build part (dot-separated "
      .. "[0-9A-Za-z-] identifiers, numbers without leading zeros, e.g. 1.2.3-rc.1+build.5)", s), BAD
  end
  return new(maj, min, pat, pre, build)
end

--- True when s is a valid SemVer 2.0 version.
---@param s string
---@param opts {prefix:string?}?
---@return boolean
function M.valid(s, opts)
  return type(s) == "string" and M.parse(s, opts) ~= nil
end

local check = ordering.checker("semver", MT, M)
local cmp = ordering.cmp

-- The precedence of two parsed versions (spec item 11).
local function precedence(a, b)
  local c = cmp(a.major, b.major)
  if c == 0 then c = cmp(a.minor, b.minor) end
  if c == 0 then c = cmp(a.patch, b.patch) end
  if c ~= 0 then return c end
  local pa, pb = a.prerelease, b.prerelease
  if #pa == 0 or #pb == 0 then return cmp(#pb, #pa) end  -- a release after its pre-releases
  for i = 1, math.max(#pa, #pb) do
    local x, y = pa[i], pb[i]
    if x == nil then return -1 end
    if y == nil then return 1 end
    local tx, ty = math.type(x), math.type(y)
    if tx and not ty then return -1 end  -- numeric identifiers before alphanumeric ones
    if ty and not tx then return 1 end
    c = cmp(x, y)
    if c ~= 0 then return c end
  end
  return 0
end

--- Compares two versions (strings or parsed) by precedence: -1, 0 or 1. Build metadata
--- does not count. An invalid version string raises.
---@param a string|relua.semver.Version
---@param b string|relua.semver.Version
---@return integer
function M.compare(a, b)
  return precedence(check(a, "compare", 1), check(b, "compare", 2))
end

ordering.operators(MT, precedence, check)

--- The canonical string: "1.2.3-rc.1+build.5".
---@return string
function V:tostring()
  local s = string.format("%d.%d.%d", self.major, self.minor, self.patch)
  if #self.prerelease > 0 then
    local t = {}
    for i, p in ipairs(self.prerelease) do t[i] = tostring(p) end
    s = s .. "-" .. table.concat(t, ".")
  end
  if #self.build > 0 then s = s .. "+" .. table.concat(self.build, ".") end
  return s
end
MT.__tostring = V.tostring

--- Is it a pre-release (1.0.0-rc.1)?
---@return boolean
function V:is_prerelease() return #self.prerelease > 0 end

--- Compares with another version: -1, 0 or 1.
---@param other string|relua.semver.Version
---@return integer
function V:compare(other) return precedence(self, check(other, "compare", 1)) end

local function copy(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  return t
end

-- The pre-release identifiers from opts.prerelease: "rc" -> {"rc"}; "rc.1" -> {"rc", 1}.
local function pre_id(s)
  if s == nil or s == "" then return {} end
  local t = identifiers(tostring(s), true)
  if not t then
    error(string.format("semver.bump: bad pre-release identifier '%s' ([0-9A-Za-z-], dot-separated)", s), 3)
  end
  return t
end

local KINDS = { major = true, minor = true, patch = true, premajor = true, preminor = true,
                prepatch = true, prerelease = true, release = true, build = true }

--- A new version bumped by kind (the version itself is not changed):
--- - "major", "minor", "patch": the next release of that level; a pre-release of exactly
---   that release becomes the release (1.0.0-rc.1 -> 1.0.0 for major; 1.2.4-rc.1 -> 1.2.4 for patch).
--- - "premajor", "preminor", "prepatch": the next release of that level as the first
---   pre-release `<id>.0` (id from opts.prerelease; without one, `0`).
--- - "prerelease": the next pre-release: 1.2.3 -> 1.2.4-<id>.0; 1.2.4-rc.1 -> 1.2.4-rc.2;
---   with another id than the current one, 1.2.4-beta.3 -> 1.2.4-rc.0.
--- - "release": drops the pre-release (1.2.4-rc.2 -> 1.2.4).
--- - "build": sets the build metadata to opts.build.
--- Build metadata is dropped by every other kind, unless opts.build gives it.
---@param v string|relua.semver.Version
---@param kind string
---@param opts {prerelease:string?, build:string?}?
---@return relua.semver.Version
function M.bump(v, kind, opts)
  v = check(v, "bump", 1)
  opts = opts or {}
  if not KINDS[kind] then
    error(string.format("semver.bump: unknown kind '%s' (major, minor, patch, premajor, preminor, "
      .. "prepatch, prerelease, release or build)", tostring(kind)), 2)
  end
  local build = {}
  if opts.build ~= nil then
    build = identifiers(tostring(opts.build), false)
    if not build then
      error(string.format("semver.bump: bad build metadata '%s' ([0-9A-Za-z-], dot-separated)", opts.build), 2)
    end
  end
  local maj, min, pat, pre = v.major, v.minor, v.patch, v.prerelease
  local id = pre_id(opts.prerelease)
  local function first_pre()
    local t = copy(id)
    t[#t + 1] = 0
    return t
  end
  if kind == "build" then
    if opts.build == nil then error("semver.bump: kind 'build' needs opts.build", 2) end
    return new(maj, min, pat, copy(pre), build)
  elseif kind == "release" then
    return new(maj, min, pat, {}, build)
  elseif kind == "major" or kind == "premajor" then
    if kind == "premajor" or #pre == 0 or min ~= 0 or pat ~= 0 then maj = maj + 1 end
    return new(maj, 0, 0, kind == "premajor" and first_pre() or {}, build)
  elseif kind == "minor" or kind == "preminor" then
    if kind == "preminor" or #pre == 0 or pat ~= 0 then min = min + 1 end
    return new(maj, min, 0, kind == "preminor" and first_pre() or {}, build)
  elseif kind == "patch" or kind == "prepatch" then
    if kind == "prepatch" or #pre == 0 then pat = pat + 1 end
    return new(maj, min, pat, kind == "prepatch" and first_pre() or {}, build)
  end
  -- prerelease
  if #pre == 0 then return new(maj, min, pat + 1, first_pre(), build) end
  local same = #id == 0
  if not same then  -- the same id: the current pre-release starts with it
    same = true
    for i, p in ipairs(id) do
      if pre[i] ~= p then same = false; break end
    end
  end
  if not same then return new(maj, min, pat, first_pre(), build) end
  local t = copy(pre)
  for i = #t, 1, -1 do
    if math.type(t[i]) then
      t[i] = t[i] + 1
      return new(maj, min, pat, t, build)
    end
  end
  t[#t + 1] = 0
  return new(maj, min, pat, t, build)
end

--- The same as semver.bump(self, kind, opts).
function V:bump(kind, opts) return M.bump(self, kind, opts) end

-- The item's version string: a string, a version, or a table with a name field (a tag).
local function text_of(x)
  if type(x) == "table" and getmetatable(x) ~= MT then return x.name end
  return x
end

--- Sorts a list of versions (strings, parsed versions, or tables with a `name` field such as
--- relua.git's tags) in place by precedence, ascending (descending when desc). Invalid
--- versions raise; use compare_loose for tag names that may not be SemVer.
---@param list table
---@param desc boolean?
---@return table list
function M.sort(list, desc)
  local keys = {}
  for _, x in ipairs(list) do
    local s = text_of(x)
    if keys[s] == nil then keys[s] = check(s, "sort", 1) end
  end
  table.sort(list, function(a, b)
    local sa, sb = text_of(a), text_of(b)
    local c = precedence(keys[sa], keys[sb])
    if c == 0 then c = cmp(tostring(sa), tostring(sb)) end
    if desc then return c > 0 end
    return c < 0
  end)
  return list
end

--- The highest of a list of version strings that are valid SemVer after opts.prefix (the
--- others are ignored), with its parsed version; nil when none is valid.
---@param list string[]
---@param opts {prefix:string?, prereleases:boolean?}?  prereleases=false skips pre-releases
---@return string|nil
---@return relua.semver.Version?
function M.max(list, opts)
  local best, bv
  for _, s in ipairs(list) do
    local v = M.parse(text_of(s), opts)
    if v and (opts == nil or opts.prereleases ~= false or #v.prerelease == 0)
       and (bv == nil or precedence(v, bv) > 0) then
      best, bv = s, v
    end
  end
  return best, bv
end

-- ------------------------------------------------------------------ loose order (tag names)

-- A name as tokens: runs of digits as numbers, the text between as strings.
local function tokens(s)
  local t = {}
  for num, text in s:gmatch("(%d*)(%D*)") do
    if num ~= "" then t[#t + 1] = math.tointeger(tonumber(num)) or math.huge end
    if text ~= "" then t[#t + 1] = text end
  end
  return t
end

local function natural(a, b)
  local ta, tb = tokens(a), tokens(b)
  for i = 1, math.max(#ta, #tb) do
    local x, y = ta[i], tb[i]
    if x == nil then  -- a is a prefix of b: b is a pre-release of a when it goes on with '-'
      return (type(y) == "string" and y:sub(1, 1) == "-") and 1 or -1
    elseif y == nil then
      return (type(x) == "string" and x:sub(1, 1) == "-") and -1 or 1
    elseif type(x) ~= type(y) then
      -- "1.0-rc" vs "1.0.1": a separator that starts a pre-release sorts first
      if type(x) == "string" then return x:sub(1, 1) == "-" and -1 or 1 end
      return y:sub(1, 1) == "-" and 1 or -1
    elseif x ~= y then
      if type(x) == "string" and (x:sub(1, 1) == "-") ~= (y:sub(1, 1) == "-") then
        return x:sub(1, 1) == "-" and -1 or 1
      end
      return x < y and -1 or 1
    end
  end
  return 0
end

-- "v1.2.3" -> "v", version; nil when the name is not a prefix and a SemVer version.
local function split_prefix(s)
  local prefix, rest = s:match("^(%D*)(%d.*)$")
  if not prefix then return nil end
  local v = M.parse(rest)
  if not v then return nil end
  return prefix, v
end

--- Compares two names the way people read versions: SemVer precedence when both are a
--- common prefix and a SemVer version ("v1.10.0-rc.2" < "v1.10.0"), otherwise numbers
--- numerically and a pre-release after '-' before its release ("v1.9" < "v1.10",
--- "1.0-beta" < "1.0" < "1.0.0.1"). Returns -1, 0 or 1.
---@param a string
---@param b string
---@return integer
function M.compare_loose(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then
    error("semver.compare_loose: strings expected", 2)
  end
  local pa, va = split_prefix(a)
  if pa then
    local pb, vb = split_prefix(b)
    if pb == pa then return precedence(va, vb) end
  end
  return natural(a, b)
end

--- Sorts names (or tables with a `name` field) in place by compare_loose, ascending
--- (descending when desc); equal ones by name.
---@param list table
---@param desc boolean?
---@return table list
function M.sort_loose(list, desc)
  local cache = {}
  local function key(s)
    local k = cache[s]
    if k == nil then
      local p, v = split_prefix(s)
      k = p and { p, v } or false
      cache[s] = k
    end
    return k
  end
  table.sort(list, function(a, b)
    local x, y = text_of(a), text_of(b)
    local kx, ky = key(x), key(y)
    local c
    if kx and ky and kx[1] == ky[1] then c = precedence(kx[2], ky[2]) else c = natural(x, y) end
    if c == 0 then return x < y end
    if desc then return c > 0 end
    return c < 0
  end)
  return list
end

return M
