-- Test servers for the HTTP specs: the plain origin (httpd.py) and the fault-injecting proxy
-- (faultproxy.py), each on 127.0.0.1 on a free port, bounded in time (they exit on their own
-- after --max-seconds or when this process dies) and stopped by :stop().
local json = require "relua.json"
local fs = require "relua.fs"
local proc = require "relua.proc"

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

-- Starts a Python helper; returns its handle once it has written its port file.
local function spawn(script, args, dir)
  local portfile = dir .. "/port"
  local argv = { "python3", here .. script, "--port-file", portfile, "--parent", tostring(proc.pid()),
    "--max-seconds", "900", "--log", dir .. "/log" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local handle = assert(proc.spawn(argv, { capture = false }))
  for _ = 1, 200 do
    local p = slurp(portfile)
    if p and p:match("^%d+\n$") then return handle, tonumber(p) end
    if not handle:running() then break end
    sleep(0.05)
  end
  handle:close()
  error("test server " .. script .. " did not start: " .. (slurp(dir .. "/log") or ""))
end

local Server = {}
Server.__index = Server

function Server:stop()
  if self.handle then
    self.handle:kill()
    self.handle:wait(5)
    self.handle:close()
    self.handle = nil
  end
  if self.dir then
    fs.remove(self.dir, { recursive = true })
    self.dir = nil
  end
end

--- The plain origin: {url=, port=, stop=}. With opts.tls, it speaks HTTPS with a fresh
--- self-signed certificate for 127.0.0.1, whose PEM path is server.cert.
function M.httpd(opts)
  local dir = assert(fs.tmpdir("relua-http"))
  local args, scheme, cert = {}, "http", nil
  if opts and opts.tls then
    cert = dir .. "/cert.pem"
    local key = dir .. "/key.pem"
    local r = assert(proc.run({ "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
      "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
      "-keyout", key, "-out", cert }, { timeout = 30 }))
    assert(r.code == 0, "openssl could not make a test certificate: " .. r.stderr)
    args = { "--cert", cert, "--key", key }
    scheme = "https"
  end
  local handle, port = spawn("httpd.py", args, dir)
  return setmetatable({ handle = handle, port = port, dir = dir, cert = cert,
    url = scheme .. "://127.0.0.1:" .. port }, Server)
end

--- The fault proxy in front of target (a server from M.httpd()).
function M.faultproxy(target)
  local dir = assert(fs.tmpdir("relua-http"))
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
