-- Starts and stops the test registries on 127.0.0.1, on free ports chosen by the kernel:
--   the PyPI-compatible index (tests/support/pypi_server.py) and verdaccio (tests/npm).
-- Each start is bounded in time; stop() is safe to call twice; the servers also exit on
-- their own when this process dies. Use them from setup/teardown (teardown runs even
-- when a test fails):
--   local reg = require "support.registries"
--   local pypi = reg.pypi()            -- {url=, legacy=, index=, user=, password=, stats(), fail(), stop()}
--   local npm = reg.verdaccio()        -- {url=, token=, user=, stop()}
local proc = require "relua.proc"
local fs = require "relua.fs"
local http = require "relua.http"
local json = require "relua.json"

local M = {}

local function root()
  return os.getenv("PWD") or fs.cwd()
end

local function sleep(s)
  proc.run({ "sleep", tostring(s) }, { capture = false })
end

local function random_secret(prefix)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(12)
  f:close()
  return prefix .. (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Waits for a port file written by the server; raises with the server's output on timeout.
local function wait_port(handle, port_file, log, what, timeout)
  local deadline = proc.clock() + timeout
  while proc.clock() < deadline do
    local text = fs.read(port_file)
    local port = text and tonumber(text:match("%d+"))
    if port then return port end
    if not handle:running() then
      local done = handle:wait(1)
      handle:close()
      error(string.format("%s exited before listening (code %s): %s", what, tostring(done.code),
        fs.read(log) or ""))
    end
    sleep(0.02)
  end
  handle:close()
  error(string.format("%s did not listen within %d s: %s", what, timeout, fs.read(log) or ""))
end

-- Starts argv with its output in a log file (a server must never block on a full pipe).
local function spawn_logged(argv, log, cwd)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = proc.quote(a) end
  return assert(proc.spawn({ "sh", "-c", "exec " .. table.concat(parts, " ") .. " >" .. proc.quote(log) .. " 2>&1" },
    { cwd = cwd, capture = false }))
end

local function stopper(handle, dir)
  local stopped = false
  return function()
    if stopped then return end
    stopped = true
    handle:kill("TERM")
    handle:wait(5)  -- past 5 s the group is killed
    handle:close()
    fs.remove(dir, { recursive = true })
  end
end

--- Starts the PyPI-compatible index. opts: warehouse (answer duplicates as pypi.org does),
--- no_simple (offer only the JSON API), timeout (seconds to wait for it, default 15); to
--- bring an index back after it went down: port, password and storage (a folder that
--- stop() keeps; the index serves the files it holds).
---@param opts {warehouse:boolean?, no_simple:boolean?, timeout:number?, port:integer?, password:string?, storage:string?}?
function M.pypi(opts)
  opts = opts or {}
  local dir = assert(fs.tmpdir("relua-pypi-"))
  local port_file = fs.join(dir, "port")
  local user, password = "relua", opts.password or random_secret("pw-")
  local storage = opts.storage or fs.join(dir, "storage")
  local argv = { "python3", root() .. "/tests/support/pypi_server.py", "--storage", storage,
                 "--port-file", port_file, "--user", user, "--password", password, "--lifetime", "3600" }
  if opts.port then argv[#argv + 1] = "--port"; argv[#argv + 1] = tostring(opts.port) end
  if opts.warehouse then argv[#argv + 1] = "--warehouse" end
  if opts.no_simple then argv[#argv + 1] = "--no-simple" end
  if opts.no_hashes then argv[#argv + 1] = "--no-hashes" end
  if opts.backlog then argv[#argv + 1] = "--backlog"; argv[#argv + 1] = tostring(opts.backlog) end
  local log = fs.join(dir, "server.log")
  local handle = spawn_logged(argv, log)
  local ok, port = pcall(wait_port, handle, port_file, log, "pypi_server.py", opts.timeout or 15)
  if not ok then
    fs.remove(dir, { recursive = true })
    error(port, 0)
  end
  local base = "http://127.0.0.1:" .. port
  local s = {
    port = port, url = base .. "/", legacy = base .. "/legacy/", index = base .. "/simple/",
    user = user, password = password, storage = storage, dir = dir,
  }
  s.stop = stopper(handle, dir)
  --- {requests=, uploads= (upload attempts seen), stored=, log={"METHOD PATH STATUS", ...}}
  function s.stats()
    local resp = assert(http.get(base .. "/_stats", { retry = false, progress = false }))
    return assert(json.decode(resp.body))
  end
  --- The next `count` requests whose path starts with `prefix` get `status`.
  function s.fail(spec)
    local resp = assert(http.post(base .. "/_fail", { json = spec, retry = false, progress = false }))
    assert(resp.status == 200, "pypi_server /_fail answered " .. resp.status)
  end
  --- How many uploads (POST /legacy/) the index has seen, whatever their answer.
  function s.uploads()
    local n = 0
    for _, line in ipairs(s.stats().log) do
      if line:match("^POST /legacy/") then n = n + 1 end
    end
    return n
  end
  --- The files stored on disk (what the index really holds).
  function s.files()
    return fs.list(fs.join(s.storage, "files")) or {}
  end
  --- The stored files whose name starts with prefix in any letter case (a wheel keeps the
  --- project's, an sdist's may be lower case), sorted: one test's files.
  function s.files_of(prefix)
    local t = {}
    prefix = prefix:lower()
    for _, f in ipairs(s.files()) do
      if f:sub(1, #prefix):lower() == prefix then t[#t + 1] = f end
    end
    table.sort(t)
    return t
  end
  return s
end

--- A primary and a fallback index (two M.pypi()) and a temporary folder, for a spec's
--- setup: {primary=, fallback=, dir=, stop()}; stop() (teardown) stops both and removes dir.
---@param prefix string  the folder's name prefix
function M.pypi_pair(prefix)
  local p = { primary = M.pypi(), fallback = M.pypi(), dir = assert(fs.tmpdir(prefix)) }
  function p.stop()
    p.primary.stop()
    p.fallback.stop()
    fs.remove(p.dir, { recursive = true })
  end
  return p
end

--- Starts tests/support/forge_server.py (a GitHub REST subset; opts.gitea: Gitea's API;
--- opts.no_digest: assets without digest). Returns {api=, url=, token=, port=, stop(),
--- stats(), fail(spec), setup(spec)}.
function M.forge(opts)
  opts = opts or {}
  local dir = assert(fs.tmpdir("relua-forge-"))
  local port_file = fs.join(dir, "port")
  local token = random_secret("ghp_")
  local argv = { "python3", root() .. "/tests/support/forge_server.py", "--port-file", port_file,
                 "--token", token, "--lifetime", "3600" }
  if opts.gitea then argv[#argv + 1] = "--gitea" end
  if opts.no_digest then argv[#argv + 1] = "--no-digest" end
  local log = fs.join(dir, "server.log")
  local handle = spawn_logged(argv, log)
  local ok, port = pcall(wait_port, handle, port_file, log, "forge_server.py", opts.timeout or 15)
  if not ok then
    fs.remove(dir, { recursive = true })
    error(port, 0)
  end
  local base = "http://127.0.0.1:" .. port
  local s = { port = port, url = base, api = base .. (opts.gitea and "/api/v1" or ""), token = token, dir = dir }
  s.stop = stopper(handle, dir)
  local function post(path, spec)
    local resp = assert(http.post(base .. path, { json = spec, retry = false, progress = false }))
    assert(resp.status == 200, "forge_server " .. path .. " answered " .. resp.status)
  end
  function s.stats()
    local resp = assert(http.get(base .. "/_stats", { retry = false, progress = false }))
    return assert(json.decode(resp.body))
  end
  function s.fail(spec) post("/_fail", spec) end
  function s.setup(spec) post("/_setup", spec) end
  return s
end

local function verdaccio_config(dir)
  return table.concat({
    "storage: " .. dir .. "/storage",
    "auth:",
    "  htpasswd:",
    "    file: " .. dir .. "/htpasswd",
    "    max_users: 1000",
    "uplinks: {}",
    "packages:",
    "  '@*/*':",
    "    access: $all",
    "    publish: $authenticated",
    "    unpublish: $authenticated",
    "  '**':",
    "    access: $all",
    "    publish: $authenticated",
    "    unpublish: $authenticated",
    "max_body_size: 200mb",
    "web:",
    "  enable: false",
    "log: { type: stdout, format: pretty, level: error }",
    "",
  }, "\n")
end

--- Starts verdaccio (no uplinks, storage and htpasswd in a temp folder) and creates a user
--- for the run through the registry's own API. Returns {url=, port=, user=, password=, token=, stop()}.
---@param opts {timeout:number?}?
function M.verdaccio(opts)
  opts = opts or {}
  local script = root() .. "/tests/support/registries_verdaccio.js"
  if not fs.exists(root() .. "/tests/npm/node_modules/verdaccio") then
    error("verdaccio is not installed: run `make deps` (npm ci in tests/npm)")
  end
  local dir = assert(fs.tmpdir("relua-verdaccio-"))
  local config = fs.join(dir, "config.yaml")
  assert(fs.write(config, verdaccio_config(dir)))
  local port_file = fs.join(dir, "port")
  local log = fs.join(dir, "verdaccio.log")
  local control = fs.join(dir, "control")
  assert(fs.mkdir(control))
  local handle = spawn_logged({ "node", script, config, port_file, control }, log, dir)
  local ok, port = pcall(wait_port, handle, port_file, log, "verdaccio", opts.timeout or 30)
  if not ok then
    fs.remove(dir, { recursive = true })
    error(port, 0)
  end
  local base = "http://127.0.0.1:" .. port .. "/"
  local s = { port = port, url = base, dir = dir }
  s.stop = stopper(handle, dir)
  local user, password = "relua-" .. random_secret(""):sub(1, 8), random_secret("pw-")
  local resp, msg = http.put(base .. "-/user/org.couchdb.user:" .. user,
    { json = { name = user, password = password }, progress = false })
  if not (resp and resp.status == 201 and resp.body:find('"token"', 1, true)) then
    s.stop()
    error("verdaccio: could not create the test user: " .. (resp and ("HTTP " .. resp.status) or msg))
  end
  s.user, s.password = user, password
  s.token = json.decode(resp.body).token
  --- The requests the registry answered, in order: {"METHOD URL STATUS", ...} (URL decoded).
  function s.requests()
    local t = {}
    for line in (fs.read(fs.join(control, "requests.log")) or ""):gmatch("[^\n]+") do t[#t + 1] = line end
    return t
  end
  --- How many publishes (PUT /NAME, not the user's PUT /-/user/...) it has seen, whatever
  --- their answer; with name, only that package's.
  function s.publishes(name)
    local c = 0
    for _, line in ipairs(s.requests()) do
      local url = line:match("^PUT (%S+)")
      if url and not url:match("^/%-/") and (not name or url == "/" .. name) then c = c + 1 end
    end
    return c
  end
  --- The next `count` requests matching {method=, prefix=} get `status` from the wrapper.
  function s.fail(spec)
    local list = json.decode(fs.read(fs.join(control, "faults.json")) or "[]") or {}
    spec.count = spec.count or 1
    list[#list + 1] = spec
    assert(fs.write(fs.join(control, "faults.json"), json.encode(list)))
  end
  return s
end

--- Starts the relua.http fault proxy (tests/support/faultproxy.py) in front of 127.0.0.1:PORT.
--- Returns {port=, url=, fault(json_line, ...), clear(), stats(), stop()}; faults apply to the
--- next new connections, in order (see faultproxy.py's header). opts.close: one request per
--- connection (so a fault's "match" sees every request).
---@param target_port integer
---@param opts {close:boolean?, max_seconds:number?}?
function M.faultproxy(target_port, opts)
  opts = opts or {}
  local dir = assert(fs.tmpdir("relua-fault-"))
  local port_file = fs.join(dir, "port")
  local log = fs.join(dir, "proxy.log")
  local argv = { "python3", root() .. "/tests/support/faultproxy.py", "--target",
    "127.0.0.1:" .. target_port, "--port-file", port_file, "--control", dir, "--parent", tostring(proc.pid()),
    "--max-seconds", tostring(opts.max_seconds or 600) }
  if opts.close then argv[#argv + 1] = "--close" end
  local handle = spawn_logged(argv, log)
  local ok, port = pcall(wait_port, handle, port_file, log, "faultproxy.py", 15)
  if not ok then
    fs.remove(dir, { recursive = true })
    error(port, 0)
  end
  local s = { port = port, url = "http://127.0.0.1:" .. port .. "/" }
  s.stop = stopper(handle, dir)
  function s.fault(...)
    local lines = {}
    for i, f in ipairs({ ... }) do lines[i] = json.encode(f) end
    assert(fs.append(fs.join(dir, "faults"), table.concat(lines, "\n") .. "\n"))
  end
  --- Drops the faults still pending (at the next connection).
  function s.clear() s.fault({ clear = true }) end
  function s.stats()
    return json.decode(fs.read(fs.join(dir, "stats.json")) or "{}") or {}
  end
  return s
end

--- Builds wheels (or sdists) with tests/support/pypi_wheel.py; returns their paths.
---@param out string folder
---@param pairs string[] {name, version, name, version, ...}
---@param opts {sdist:boolean?, salt:string?, payload:integer?}?
function M.build_dists(out, pairs, opts)
  opts = opts or {}
  local argv = { "python3", root() .. "/tests/support/pypi_wheel.py", "--out", out }
  if opts.sdist then argv[#argv + 1] = "--sdist" end
  if opts.salt then argv[#argv + 1] = "--salt"; argv[#argv + 1] = opts.salt end
  if opts.payload then argv[#argv + 1] = "--payload"; argv[#argv + 1] = tostring(opts.payload) end
  for _, p in ipairs(pairs) do argv[#argv + 1] = p end
  local r = assert(proc.run(argv, { timeout = 120 }))
  assert(r.code == 0, "pypi_wheel.py failed: " .. r.stderr)
  local paths = {}
  for line in r.stdout:gmatch("[^\n]+") do paths[#paths + 1] = line end
  return paths
end

--- Packs npm packages with one `npm pack` run: each spec is {manifest = {name=, version=, ...},
--- content = index.js text}; returns the tarballs' paths in order (all written to `out`).
function M.npm_pack(out, specs)
  assert(fs.mkdir(out))
  local argv = { "npm", "pack", "--silent", "--pack-destination", out }
  for i, spec in ipairs(specs) do
    local manifest = spec.manifest
    local src = fs.join(out, "src-" .. i .. "-" .. manifest.name:gsub("[@/]", "_") .. "-" .. manifest.version)
    assert(fs.mkdir(src))
    manifest.main = manifest.main or "index.js"
    assert(fs.write(fs.join(src, "package.json"), json.encode(manifest)))
    assert(fs.write(fs.join(src, "index.js"), spec.content or "module.exports = 1;\n"))
    argv[#argv + 1] = src
  end
  local r = assert(proc.run(argv, { timeout = 60,
    env = { npm_config_update_notifier = "false", npm_config_fund = "false", npm_config_audit = "false" } }))
  assert(r.code == 0, "npm pack failed: " .. r.stderr)
  local paths = {}
  for line in r.stdout:gmatch("[^\n]+") do
    if line:match("%.tgz$") then paths[#paths + 1] = fs.join(out, line) end
  end
  assert(#paths == #specs, "npm pack made " .. #paths .. " tarballs for " .. #specs .. " packages")
  return paths
end

return M
