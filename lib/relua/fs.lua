--- relua.fs: files and folders.
-- Failures of the world return nil, message, code: the message names the operation and the
-- path ("fs.read: /x/y: No such file or directory"), the code is the errno name ("ENOENT").
-- Wrong argument types raise. fs.write is atomic and durable; fs.append is one write(2).
local core = require "relua.core.fs"
-- libcrypto is loaded on the first digest or base64, not when relua.fs is required.
local crypto = setmetatable({}, { __index = function(t, k)
  local c = require "relua.core.crypto"
  setmetatable(t, { __index = c })
  return c[k]
end })

local M = {}

local function need(fname, n, v, want)
  if type(v) ~= want then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, want, type(v)), 3)
  end
end

local function opt_table(fname, n, v)
  if v ~= nil and type(v) ~= "table" then
    error(string.format("bad argument #%d to '%s' (table expected, got %s)", n, fname, type(v)), 3)
  end
  return v or {}
end

--- Reads a whole file.
---@param path string
---@return string|nil data
---@return string? message
---@return string? code
function M.read(path)
  need("fs.read", 1, path, "string")
  return core.read(path)
end

--- Replaces a file atomically and durably: a temp file beside it, write, fsync, rename,
--- fsync of the folder. On failure the old file is untouched and no temp file is left.
--- mode: permission bits of the new file (default: the old file's, else 0666 less umask).
---@param path string
---@param data string
---@param opts {mode:integer?}?
---@return true|nil ok
---@return string? message
---@return string? code
function M.write(path, data, opts)
  need("fs.write", 1, path, "string")
  need("fs.write", 2, data, "string")
  opts = opt_table("fs.write", 3, opts)
  return core.write(path, data, opts.mode)
end

--- Appends with one write(2) in O_APPEND mode (lines from several processes do not mix);
--- creates the file. sync=true fsyncs before returning.
---@param path string
---@param data string
---@param opts {sync:boolean?}?
---@return true|nil ok
---@return string? message
---@return string? code
function M.append(path, data, opts)
  need("fs.append", 1, path, "string")
  need("fs.append", 2, data, "string")
  opts = opt_table("fs.append", 3, opts)
  return core.append(path, data, opts.sync)
end

--- True when something (a file, a folder, even a dangling link) is at path.
---@param path string
---@return boolean
function M.exists(path)
  need("fs.exists", 1, path, "string")
  return core.exists(path)
end

---@class relua.fs.Stat
---@field type "file"|"directory"|"link"|"other"
---@field size integer
---@field mode integer   permission bits (0755 is 493)
---@field mtime number   seconds since the epoch

--- What is at path (a link is reported as a link, not followed, unless follow=true).
---@param path string
---@param opts {follow:boolean?}?
---@return relua.fs.Stat|nil
---@return string? message
---@return string? code
function M.stat(path, opts)
  need("fs.stat", 1, path, "string")
  opts = opt_table("fs.stat", 2, opts)
  return core.stat(path, opts.follow)
end

local function is_dir(path)
  local st = core.stat(path, true)
  return st ~= nil and st.type == "directory"
end
M.isdir = is_dir

--- Creates a folder and its missing parents (mkdir -p). An existing folder is success.
---@param path string
---@return true|nil ok
---@return string? message
---@return string? code
function M.mkdir(path)
  need("fs.mkdir", 1, path, "string")
  if is_dir(path) then return true end
  local prefix = path:sub(1, 1) == "/" and "/" or ""
  for part in path:gmatch("[^/]+") do
    prefix = prefix == "" and part or (prefix:sub(-1) == "/" and prefix .. part or prefix .. "/" .. part)
    if not is_dir(prefix) then
      local ok, msg, code = core.mkdir(prefix)
      if not ok and not (code == "EEXIST" and is_dir(prefix)) then
        if code == "EEXIST" then
          return nil, string.format("fs.mkdir: %s: %s exists and is not a folder", path, prefix), "ENOTDIR"
        end
        return nil, msg, code
      end
    end
  end
  return true
end

--- The names in a folder (no . and ..), sorted.
---@param dir string
---@return string[]|nil names
---@return string? message
---@return string? code
function M.list(dir)
  need("fs.list", 1, dir, "string")
  local names, msg, code = core.list(dir)
  if not names then return nil, msg, code end
  table.sort(names)
  return names
end

local function remove_tree(path)
  local st, msg, code = core.stat(path)
  if not st then return nil, msg, code end
  if st.type == "directory" then
    local names
    names, msg, code = core.list(path)
    if not names then return nil, msg, code end
    for _, name in ipairs(names) do
      local ok
      ok, msg, code = remove_tree(path .. "/" .. name)
      if not ok then return nil, msg, code end
    end
  end
  return core.remove(path)
end

--- Removes a file or a link; a folder needs recursive=true (then all it holds goes too;
--- links inside are removed, never followed).
---@param path string
---@param opts {recursive:boolean?}?
---@return true|nil ok
---@return string? message
---@return string? code
function M.remove(path, opts)
  need("fs.remove", 1, path, "string")
  opts = opt_table("fs.remove", 2, opts)
  local st, msg, code = core.stat(path)
  if not st then return nil, msg, code end
  if st.type == "directory" then
    if not opts.recursive then
      return nil, "fs.remove: " .. path .. ": is a folder (pass {recursive=true} to remove it and all it holds)", "EISDIR"
    end
    return remove_tree(path)
  end
  return core.remove(path)
end

--- Copies a file (streamed; dst is replaced atomically and gets src's permission bits).
---@param src string
---@param dst string
---@return true|nil ok
---@return string? message
---@return string? code
function M.copy(src, dst)
  need("fs.copy", 1, src, "string")
  need("fs.copy", 2, dst, "string")
  if is_dir(dst) then dst = dst:gsub("/+$", "") .. "/" .. M.basename(src) end
  return core.copy(src, dst)
end

--- A new private (0700) folder under $TMPDIR or /tmp; removing it is the caller's job.
---@param prefix string?
---@return string|nil path
---@return string? message
---@return string? code
function M.tmpdir(prefix)
  if prefix ~= nil then need("fs.tmpdir", 1, prefix, "string") end
  return core.tmpdir(prefix)
end

--- The current working folder.
---@return string
M.cwd = core.cwd

--- The target of a symbolic link.
---@param path string
---@return string|nil target
---@return string? message
---@return string? code
function M.readlink(path)
  need("fs.readlink", 1, path, "string")
  return core.readlink(path)
end

-- ------------------------------------------------------------------ paths

--- The folder part of a path: "a/b/c" -> "a/b", "c" -> ".", "/c" -> "/".
---@param p string
---@return string
function M.dirname(p)
  need("fs.dirname", 1, p, "string")
  p = p:gsub("(.)/+$", "%1")
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  d = d:gsub("(.)/+$", "%1")
  if d == "" then return "/" end
  return d
end

--- The last part of a path: "a/b/c.txt" -> "c.txt", "a/b/" -> "b".
---@param p string
---@return string
function M.basename(p)
  need("fs.basename", 1, p, "string")
  local e = #p
  while e > 0 and p:byte(e) == 47 do e = e - 1 end  -- "/": trailing ones are dropped
  if e == 0 and #p > 0 then return "/" end
  local b = e
  while b > 0 and p:byte(b) ~= 47 do b = b - 1 end
  return p:sub(b + 1, e)
end

--- Joins path parts with "/"; an absolute part starts over (as Python's os.path.join).
---@param ... string
---@return string
function M.join(...)
  local out = ""
  for i = 1, select("#", ...) do
    local part = select(i, ...)
    need("fs.join", i, part, "string")
    if part:sub(1, 1) == "/" or out == "" then out = part
    elseif part ~= "" then
      out = (out:sub(-1) == "/" and out or out .. "/") .. part
    end
  end
  return out
end

--- An absolute, normalized path (. and .. resolved lexically; links are not resolved).
---@param p string
---@return string
function M.abspath(p)
  need("fs.abspath", 1, p, "string")
  if p:sub(1, 1) ~= "/" then p = assert(core.cwd()) .. "/" .. p end
  local parts = {}
  for part in p:gmatch("[^/]+") do
    if part == ".." then
      if #parts > 0 then parts[#parts] = nil end
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return "/" .. table.concat(parts, "/")
end

-- ------------------------------------------------------------------ glob

-- A glob segment as an anchored Lua pattern: * ? [..] [!..]; everything else literal.
local function segment_pattern(seg)
  local out, i, n = { "^" }, 1, #seg
  while i <= n do
    local c = seg:sub(i, i)
    if c == "*" then out[#out + 1] = ".*"
    elseif c == "?" then out[#out + 1] = "."
    elseif c == "[" and seg:find("]", i + 2, true) then
      local j = seg:find("]", i + 2, true)
      local body = seg:sub(i + 1, j - 1)
      local neg = body:sub(1, 1) == "!" or body:sub(1, 1) == "^"
      if neg then body = body:sub(2) end
      body = body:gsub("[%%%]%^]", "%%%0")
      out[#out + 1] = "[" .. (neg and "^" or "") .. body .. "]"
      i = j
    elseif c:match("[%^%$%(%)%%%.%[%]%+%-]") then out[#out + 1] = "%" .. c
    else out[#out + 1] = c end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

local function has_magic(seg) return seg:find("[*?[]") ~= nil end

local function glob_join(base, name)
  if base == "" then return name end
  if base:sub(-1) == "/" then return base .. name end
  return base .. "/" .. name
end

local function expand(base, segs, i, found)
  if i > #segs then
    if base ~= "" and core.exists(base) then found[base] = true end
    return
  end
  local seg = segs[i]
  if seg == "**" then
    expand(base, segs, i + 1, found)             -- zero folders
    local names = core.list(base == "" and "." or base)
    for _, name in ipairs(names or {}) do
      local p = glob_join(base, name)
      local st = core.stat(p)                    -- links to folders are not followed
      if name:sub(1, 1) ~= "." and st then
        if i == #segs then found[p] = true end   -- a trailing ** is everything below
        if st.type == "directory" then expand(p, segs, i, found) end
      end
    end
  elseif not has_magic(seg) then
    local p = glob_join(base, seg)
    if i == #segs or is_dir(p) then expand(p, segs, i + 1, found) end
  else
    local pat = segment_pattern(seg)
    local dots = seg:sub(1, 1) == "."
    local names = core.list(base == "" and "." or base)
    for _, name in ipairs(names or {}) do
      if name:match(pat) and (dots or name:sub(1, 1) ~= ".") then
        local p = glob_join(base, name)
        if i == #segs then found[p] = true
        elseif is_dir(p) then expand(p, segs, i + 1, found) end
      end
    end
  end
end

--- Paths matching a pattern, sorted. Per segment: * (any run), ? (one character),
--- [abc] [a-z] [!abc]; a segment ** matches any depth of folders (zero or more), and a
--- trailing ** everything below (files and folders). As in
--- the shell, wildcards do not match a leading "." unless the segment starts with one,
--- and ** does not enter hidden folders or follow links to folders. No match: {}.
---@param pattern string
---@return string[]
function M.glob(pattern)
  need("fs.glob", 1, pattern, "string")
  local segs = {}
  for seg in pattern:gmatch("[^/]+") do segs[#segs + 1] = seg end
  local found = {}
  expand(pattern:sub(1, 1) == "/" and "/" or "", segs, 1, found)
  local out = {}
  for p in pairs(found) do out[#out + 1] = p end
  table.sort(out)
  return out
end

-- ------------------------------------------------------------------ digests

local ALGOS = { sha256 = true, sha512 = true, sha1 = true, md5 = true }
local FORMATS = { hex = true, base64 = true, raw = true }

local function check_digest(fname, algo, format)
  if not ALGOS[algo] then
    error(string.format("%s: unknown algorithm '%s' (sha256, sha512, sha1, md5)", fname, tostring(algo)), 3)
  end
  if format ~= nil and not FORMATS[format] then
    error(string.format("%s: unknown format '%s' (hex, base64, raw)", fname, tostring(format)), 3)
  end
end

--- The digest of a file, streamed (constant memory for any size).
---@param path string
---@param algo "sha256"|"sha512"|"sha1"|"md5"
---@param format ("hex"|"base64"|"raw")?  default "hex"
---@return string|nil digest
---@return string? message
---@return string? code
function M.digest(path, algo, format)
  need("fs.digest", 1, path, "string")
  check_digest("fs.digest", algo, format)
  return crypto.digest_file(path, algo, format)
end

--- Several digests of a file from one read of it: `fs.digests(path, {sha256 = "hex",
--- md5 = "hex"})` -> `{sha256 = ..., md5 = ...}` (at most 4 algorithms).
---@param path string
---@param algos table<string, "hex"|"base64"|"raw">
---@return table<string, string>|nil digests
---@return string? message
---@return string? code
function M.digests(path, algos)
  need("fs.digests", 1, path, "string")
  need("fs.digests", 2, algos, "table")
  for algo, format in pairs(algos) do check_digest("fs.digests", algo, format) end
  return crypto.digests_file(path, algos)
end

--- The digest of a string in memory.
---@param data string
---@param algo "sha256"|"sha512"|"sha1"|"md5"
---@param format ("hex"|"base64"|"raw")?  default "hex"
---@return string
function M.hash(data, algo, format)
  need("fs.hash", 1, data, "string")
  check_digest("fs.hash", algo, format)
  return crypto.hash(data, algo, format)
end

--- Standard base64 (with padding, no line breaks).
---@param data string
---@return string
function M.base64(data)
  need("fs.base64", 1, data, "string")
  return crypto.base64(data)
end

--- Decodes base64 (standard or URL-safe alphabet; whitespace and missing padding are
--- accepted).
---@param text string
---@return string|nil data
---@return string? message
function M.unbase64(text)
  need("fs.unbase64", 1, text, "string")
  text = text:gsub("%s+", ""):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  local rem = #text % 4
  if rem == 1 then return nil, "fs.unbase64: not base64 (bad length)" end
  if rem > 0 then text = text .. string.rep("=", 4 - rem) end
  local data, msg = crypto.unbase64(text)
  if not data then return nil, msg end
  return data
end

-- ------------------------------------------------------------------ locks

---@class relua.fs.Lock
---@field close fun(self)                    releases the lock (also <close> and __gc)
---@field holder fun(self):{pid:integer, host:string, since:string}  the record it wrote

--- Takes an exclusive lock (flock) on path, creating the file. The file records
--- "pid=N host=H since=ISO8601" while held. wait: false (default: try once), true (until
--- free; Ctrl-C interrupts) or seconds. When someone else holds it:
--- nil, "fs.lock: PATH is held by pid N on HOST since T", "locked", {pid=, host=, since=}.
---@param path string
---@param opts {wait:boolean|number?}?
---@return relua.fs.Lock|nil lock
---@return string? message
---@return string? code
---@return {pid:integer, host:string, since:string}? holder
function M.lock(path, opts)
  need("fs.lock", 1, path, "string")
  opts = opt_table("fs.lock", 2, opts)
  local wait = opts.wait or false
  if type(wait) ~= "boolean" and type(wait) ~= "number" then
    error("fs.lock: option 'wait' must be a boolean or a number of seconds", 2)
  end
  return core.lock(path, wait)
end

return M
