-- Helpers shared by the specs: the binary under test, temporary folders, and running
-- relua as a subprocess the way a user does (exit code, stdout, stderr).
local M = {}

--- The relua binary under test (the ASan build in the sanitizer pass).
M.bin = os.getenv("RELUA_BIN") or "./relua"
--- The repository root (specs run from it).
M.root = os.getenv("PWD")

--- Quotes a string for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

--- Writes a file (test fixtures), creating nothing else.
function M.spit(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

local tmpdirs = {}

--- A new temporary folder, removed by M.cleanup() (call it in an after_each/teardown).
function M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/relua-test.XXXXXX")):read("l")
  tmpdirs[#tmpdirs + 1] = p
  return p
end

function M.cleanup()
  for i = #tmpdirs, 1, -1 do
    os.execute("rm -rf " .. M.quote(tmpdirs[i]))
    tmpdirs[i] = nil
  end
end

--- Runs a shell command line; returns {code=, stdout=, stderr=}.
---@param cmdline string
---@param opts {cwd:string?, stdin:string?, env:table?}?
function M.sh(cmdline, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local pre = ""
  if opts.env then
    for k, v in pairs(opts.env) do
      if v == false then pre = pre .. "unset " .. k .. "; "
      else pre = pre .. "export " .. k .. "=" .. M.quote(v) .. "; " end
    end
  end
  if opts.cwd then pre = pre .. "cd " .. M.quote(opts.cwd) .. " && " end
  local input = "/dev/null"
  if opts.stdin then input = M.spit(dir .. "/stdin", opts.stdin) end
  local full = string.format("(%s%s) <%s >%s 2>%s; echo $? >%s", pre, cmdline, input,
    M.quote(dir .. "/out"), M.quote(dir .. "/err"), M.quote(dir .. "/rc"))
  os.execute(full)
  return {
    code = tonumber(slurp(dir .. "/rc")),
    stdout = slurp(dir .. "/out"),
    stderr = slurp(dir .. "/err"),
  }
end

--- Runs the relua binary with arguments; returns {code=, stdout=, stderr=}.
---@param args string[]
---@param opts {cwd:string?, stdin:string?, env:table?}?
function M.relua(args, opts)
  local bin = M.bin
  if bin:sub(1, 1) ~= "/" then bin = M.root .. "/" .. bin end
  local parts = { M.quote(bin) }
  for _, a in ipairs(args) do parts[#parts + 1] = M.quote(a) end
  return M.sh(table.concat(parts, " "), opts)
end

--- Does the binary link the shared library `lib` (e.g. "libcurl") directly? A `make LAZY=`
--- build does; the default build loads it with its lazy module.
function M.links(bin, lib)
  return M.sh("readelf -d " .. M.quote(bin)).stdout:find("Shared library: %[" .. lib) ~= nil
end

return M
