-- Test servers for the HTTP specs: the plain origin (httpd.py) and the fault-injecting proxy
-- (faultproxy.py), each on 127.0.0.1 on a free port, bounded in time (they exit on their own
-- after --max-seconds or when this process dies) and stopped by :stop().
local json = require "relua.json"

local M = {}

local here = "tests/support/"

local function sleep(s)
  os.execute("sleep " .. s)
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function mypid()
  local s = slurp("/proc/self/stat")
  return tonumber(s:match("^(%d+)"))
end

local function tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/relua-http.XXXXXX")):read("l")
  return p
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Starts a Python helper in the background; returns its handle once the port file appears.
local function spawn(script, args, dir)
  local portfile = dir .. "/port"
  local argv = { "python3", here .. script, "--port-file", portfile, "--parent", tostring(mypid()),
    "--max-seconds", "900" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local ok, proc = pcall(require, "relua.proc")
  local handle
  if ok then
    handle = assert(proc.spawn(argv, { capture = false }))
  else
    local parts = {}
    for _, a in ipairs(argv) do parts[#parts + 1] = quote(a) end
    local cmd = table.concat(parts, " ") .. " >/dev/null 2>" .. quote(dir .. "/stderr") ..
      " & echo $! > " .. quote(dir .. "/pid")
    os.execute(cmd)
    local pid = tonumber(slurp(dir .. "/pid"))
    handle = {
      kill = function() os.execute("kill " .. pid .. " 2>/dev/null") end,
      close = function() os.execute("kill -9 " .. pid .. " 2>/dev/null") end,
    }
  end
  for _ = 1, 200 do
    local p = slurp(portfile)
    if p and p:match("^%d+\n$") then return handle, tonumber(p) end
    sleep(0.05)
  end
  handle:close()
  error("test server " .. script .. " did not start: " .. (slurp(dir .. "/stderr") or ""))
end

local Server = {}
Server.__index = Server

function Server:stop()
  if self.handle then
    self.handle:kill()
    self.handle:close()
    self.handle = nil
  end
  if self.dir then
    os.execute("rm -rf " .. quote(self.dir))
    self.dir = nil
  end
end

--- The plain origin: {url=, port=, stop=}. With opts.tls, it speaks HTTPS with a fresh
--- self-signed certificate for 127.0.0.1, whose PEM path is server.cert.
function M.httpd(opts)
  local dir = tmpdir()
  local args, scheme, cert = {}, "http", nil
  if opts and opts.tls then
    cert = dir .. "/cert.pem"
    local key = dir .. "/key.pem"
    local rc = os.execute("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1" ..
      " -addext subjectAltName=IP:127.0.0.1 -keyout " .. quote(key) .. " -out " .. quote(cert) ..
      " >/dev/null 2>&1")
    assert(rc, "openssl could not make a test certificate")
    args = { "--cert", cert, "--key", key }
    scheme = "https"
  end
  local handle, port = spawn("httpd.py", args, dir)
  return setmetatable({ handle = handle, port = port, dir = dir, cert = cert,
    url = scheme .. "://127.0.0.1:" .. port }, Server)
end

--- The fault proxy in front of target (a server from M.httpd()).
function M.faultproxy(target)
  local dir = tmpdir()
  local control = dir .. "/control"
  local handle, port = spawn("faultproxy.py",
    { "--target", "127.0.0.1:" .. target.port, "--control", control }, dir)
  local s = setmetatable({ handle = handle, port = port, dir = dir, control = control,
    url = "http://127.0.0.1:" .. port }, Server)
  return s
end

--- Queues a fault for the next connections: proxy:fault{fault="reset", count=1}.
function Server:fault(t)
  local f = assert(io.open(self.control .. "/faults", "ab"))
  f:write(json.encode(t), "\n")
  f:close()
end

--- The proxy's counters: {connections=, faults={...}, requests={...}}.
function Server:stats()
  return json.decode(assert(slurp(self.control .. "/stats.json")))
end

return M
