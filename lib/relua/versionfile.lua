--- relua.versionfile: read and set the version a project file declares, changing only the
-- bytes of the version itself: pyproject.toml ([project] or [tool.poetry]), package.json
-- (the top-level "version"), Cargo.toml ([package], or [workspace.package]) and a Python
-- module's `__version__ = "..."` (__init__.py, _version.py, ...). Comments, spacing, key
-- order, line endings and the `version` keys of dependencies are left as they are.
-- The file is replaced atomically (relua.fs.write), so --dry-run shows the write.
local fs = require "relua.fs"
local errors = require "relua.error"

local M = {}

-- ------------------------------------------------------------------ TOML

-- A key or table name without spaces and quotes around its parts: ` a . "b" ` -> a.b
local function dotted(s)
  local parts = {}
  local i, n = 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") or c == "." then
      i = i + 1
    elseif c == '"' or c == "'" then
      local j = s:find(c, i + 1, true) or n
      parts[#parts + 1] = s:sub(i + 1, j - 1)
      i = j + 1
    else
      local w = s:match("^[%w_%-]+", i) or c
      parts[#parts + 1] = w
      i = i + #w
    end
  end
  return table.concat(parts, ".")
end

-- The end (index of the last char) of the string starting at i (a quote), or nil.
local function toml_string_end(text, i)
  local q = text:sub(i, i)
  local triple = text:sub(i, i + 2) == q:rep(3)
  local j = triple and i + 3 or i + 1
  while j <= #text do
    local c = text:sub(j, j)
    if c == "\\" and q == '"' then
      j = j + 2
    elseif triple and text:sub(j, j + 2) == q:rep(3) then
      while text:sub(j + 3, j + 3) == q do j = j + 1 end  -- up to two quotes may end the content
      return j + 2
    elseif not triple and c == q then
      return j
    elseif not triple and c == "\n" then
      return nil
    else
      j = j + 1
    end
  end
  return nil
end

-- Every `key = value` of a TOML text with its table: {{table=, key=, first=, last=}} where
-- first..last are the value's bytes (comments and the line end excluded).
local function toml_entries(text, name)
  local out, tbl, i, n = {}, "", 1, #text
  local function fail(msg)
    errors.raise("bad_file", string.format("%s: %s", name, msg), { exit = 2 })
  end
  while i <= n do
    local c = text:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "#" then
      i = (text:find("\n", i, true) or n) + 1
    elseif c == "[" then
      local close = text:sub(i, i + 1) == "[[" and "]]" or "]"
      local s = i + #close
      local e = text:find(close, s, true)
      if not e then fail("unterminated table header") end
      tbl = dotted(text:sub(s, e - 1))
      i = e + #close
    else
      local eq = text:find("=", i, true)
      local nl = text:find("\n", i, true) or n + 1
      if not eq or eq > nl then fail(string.format("line %d is not 'key = value'", select(2, text:sub(1, i):gsub("\n", "")) + 1)) end
      local key = dotted(text:sub(i, eq - 1))
      local j = eq + 1
      while text:sub(j, j):match("^[ \t]$") do j = j + 1 end
      local first, depth, last = j, 0, j - 1
      while j <= n do
        local ch = text:sub(j, j)
        if ch == '"' or ch == "'" then
          local e = toml_string_end(text, j)
          if not e then fail("unterminated string in '" .. key .. "'") end
          last, j = e, e + 1
        elseif ch == "#" then
          j = text:find("\n", j, true) or n + 1
        elseif ch == "\n" then
          if depth == 0 then break end
          j = j + 1
        elseif ch == "[" or ch == "{" then
          depth, last, j = depth + 1, j, j + 1
        elseif ch == "]" or ch == "}" then
          depth, last, j = depth - 1, j, j + 1
        elseif ch:match("[ \t\r]") then
          j = j + 1
        else
          last, j = j, j + 1
        end
      end
      out[#out + 1] = { table = tbl, key = key, first = first, last = last }
      i = j + 1
    end
  end
  return out
end

-- ------------------------------------------------------------------ formats

local function unquote_toml(raw)
  local q = raw:sub(1, 1)
  if (q == '"' or q == "'") and raw:sub(-1) == q and #raw >= 2 and raw:sub(1, 3) ~= q:rep(3) then
    return raw:sub(2, -2), q
  end
  return nil
end

-- Finds the version entry of a TOML file among `where` ({table, key} in order of preference).
local function toml_find(text, name, where, dynamic_hint)
  local entries = toml_entries(text, name)
  for _, w in ipairs(where) do
    for _, e in ipairs(entries) do
      if e.table == w[1] and e.key == w[2] then
        local raw = text:sub(e.first, e.last)
        local v, q = unquote_toml(raw)
        if not v then
          errors.raise("no_version", string.format("%s: [%s] %s is %s, not a version string", name, w[1], w[2], raw),
            { exit = 2, hint = dynamic_hint })
        end
        return { first = e.first, last = e.last, version = v, quote = q }
      end
      if e.table == w[1] and e.key:match("^version%.") then
        errors.raise("no_version", string.format("%s: [%s] %s = %s: the version is not in this table",
          name, w[1], e.key, text:sub(e.first, e.last)), { exit = 2, hint = dynamic_hint })
      end
    end
  end
  for _, e in ipairs(entries) do
    if e.table == "project" and e.key == "dynamic" and text:sub(e.first, e.last):find('"version"', 1, true) then
      errors.raise("no_version", string.format("%s: the version is dynamic ([project] dynamic = %s)", name,
        text:sub(e.first, e.last)), { exit = 2, hint = "set it where the build backend reads it, e.g. the package's __init__.py" })
    end
  end
  local names = {}
  for _, w in ipairs(where) do names[#names + 1] = "[" .. w[1] .. "] " .. w[2] end
  errors.raise("no_version", string.format("%s: no version found (looked for %s)", name, table.concat(names, ", ")),
    { exit = 2 })
end

local formats = {}

formats.pyproject = {
  find = function(text, name)
    return toml_find(text, name, { { "project", "version" }, { "tool.poetry", "version" } })
  end,
  check = "pep440",
}

formats.cargo = {
  find = function(text, name)
    return toml_find(text, name, { { "package", "version" }, { "workspace.package", "version" } },
      "a member that inherits (version.workspace = true) takes its version from [workspace.package] in the workspace's Cargo.toml")
  end,
  check = "semver",
}

-- The end of the JSON value starting at i (index of its last byte).
local function json_value_end(text, i, name)
  local c = text:sub(i, i)
  if c == '"' then
    local j = i + 1
    while true do
      local k = text:find('["\\]', j)
      if not k then break end
      if text:sub(k, k) == "\\" then j = k + 2 else return k end
    end
  elseif c == "{" or c == "[" then
    local depth, j = 0, i
    while j <= #text do
      local ch = text:sub(j, j)
      if ch == '"' then
        j = json_value_end(text, j, name)
      elseif ch == "{" or ch == "[" then
        depth = depth + 1
      elseif ch == "}" or ch == "]" then
        depth = depth - 1
        if depth == 0 then return j end
      end
      j = j + 1
    end
  else
    local e = text:find("[%s,}%]]", i)
    return (e or #text + 1) - 1
  end
  errors.raise("bad_file", name .. ": not valid JSON (unterminated value)", { exit = 2 })
end

formats.package_json = {
  find = function(text, name)
    local i = text:find("%S")
    if not i or text:sub(i, i) ~= "{" then errors.raise("bad_file", name .. ": not a JSON object", { exit = 2 }) end
    i = i + 1
    while true do
      i = text:find("%S", i)
      if not i or text:sub(i, i) == "}" then break end
      if text:sub(i, i) == "," then
        i = i + 1
      else
        if text:sub(i, i) ~= '"' then errors.raise("bad_file", name .. ": not valid JSON (a key expected)", { exit = 2 }) end
        local ke = json_value_end(text, i, name)
        local key = text:sub(i + 1, ke - 1)
        local colon = text:find("%S", ke + 1)
        if not colon or text:sub(colon, colon) ~= ":" then
          errors.raise("bad_file", name .. ": not valid JSON (':' expected after \"" .. key .. "\")", { exit = 2 })
        end
        local vs = text:find("%S", colon + 1)
        local ve = json_value_end(text, vs, name)
        if key == "version" then
          if text:sub(vs, vs) ~= '"' then
            errors.raise("no_version", name .. ": \"version\" is not a string", { exit = 2 })
          end
          return { first = vs, last = ve, version = text:sub(vs + 1, ve - 1), quote = '"' }
        end
        i = ve + 1
      end
    end
    errors.raise("no_version", name .. ": no top-level \"version\"", { exit = 2 })
  end,
  check = "semver",
}

-- The start of each top-level line of Python source that is code (not inside a string).
local function python_lines(text)
  local starts, i, n, at_start = {}, 1, #text, true
  while i <= n do
    if at_start then starts[#starts + 1] = i end
    at_start = false
    local c = text:sub(i, i)
    if c == "\n" then
      at_start = true
      i = i + 1
    elseif c == "#" then
      i = text:find("\n", i, true) or n + 1
    elseif c == '"' or c == "'" then
      local triple = text:sub(i, i + 2) == c:rep(3)
      local close = triple and c:rep(3) or c
      local j = i + #close
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then j = j + 2
        elseif text:sub(j, j + #close - 1) == close then break
        elseif d == "\n" and not triple then break
        else j = j + 1 end
      end
      i = j + #close
    else
      i = i + 1
    end
  end
  return starts
end

formats.python = {
  find = function(text, name)
    for _, s in ipairs(python_lines(text)) do
      local lhs, q = text:match("^(__version__%s*:?[^=\n]-=[ \t]*)([\"'])", s)
      if lhs then
        local first = s + #lhs
        local last = text:find(q, first + 1, true)
        if last and not text:sub(first + 1, last - 1):find("\n") then
          return { first = first, last = last, version = text:sub(first + 1, last - 1), quote = q }
        end
      end
    end
    errors.raise("no_version", name .. ": no top-level __version__ = \"...\" line", { exit = 2 })
  end,
  check = "pep440",
}

local function format_of(path, opts)
  local f = opts and opts.format
  if f then
    if not formats[f] then error("versionfile: unknown format '" .. tostring(f) .. "' (pyproject, cargo, package_json, python)", 3) end
    return f
  end
  local base = path:match("([^/]*)$")
  if base == "pyproject.toml" then return "pyproject" end
  if base == "Cargo.toml" then return "cargo" end
  if base == "package.json" then return "package_json" end
  if base:match("%.py$") then return "python" end
  errors.usage(string.format("%s: relua does not know where this file keeps its version", path),
    "supported: pyproject.toml, package.json, Cargo.toml and Python files with __version__ (or opts.format)")
end

local function read(path)
  local text, err, code = fs.read(path)
  if not text then errors.raise(code or "ENOENT", err, { exit = 2 }) end
  return text
end

--- The version a file declares and where: version, {first=, last=} (the bytes of the quoted
--- value). Raises a structured error (exit 2) when the file has none.
---@param path string
---@param opts {format:string?}?  "pyproject", "cargo", "package_json" or "python" (default: from the name)
---@return string version
function M.get(path, opts)
  local text = read(path)
  local found = formats[format_of(path, opts)].find(text, path)
  return found.version, found
end

--- Sets the version of a file, changing only the version's bytes. The version is checked
--- first: PEP 440 for Python files, SemVer for package.json and Cargo.toml. Returns the
--- old version. Raises a structured error (exit 2) for a bad version or a file without one.
---@param path string
---@param version string
---@param opts {format:string?}?
---@return string old
function M.set(path, version, opts)
  if type(version) ~= "string" then error("versionfile.set: the version must be a string", 2) end
  local fmt = format_of(path, opts)
  local check = formats[fmt].check
  if check == "pep440" then
    local ok, err = require("relua.pep440").parse(version)
    if not ok then errors.usage(path .. ": " .. err) end
  else
    local ok, err = require("relua.semver").parse(version)
    if not ok then errors.usage(path .. ": " .. err) end
  end
  local text = read(path)
  local found = formats[fmt].find(text, path)
  if found.version == version then return found.version end
  local new = text:sub(1, found.first - 1) .. found.quote .. version .. found.quote .. text:sub(found.last + 1)
  local ok, err, code = fs.write(path, new)
  if not ok then errors.raise(code or "write", err) end
  return found.version
end

return M
