-- A real git smart-HTTP server for the specs: lighttpd on 127.0.0.1 (a free port) running
-- /usr/lib/git-core/git-http-backend through mod_cgi + mod_alias, with Basic
-- authentication (mod_auth, a plain user file). Its config, logs and repositories live in
-- a temporary folder removed by stop(). Bounded in time: it starts within 10 s or fails,
-- and stop() kills it (TERM, then KILL).
--
--   local srv = githttp.start{ user = "alice", password = "s3cret" }
--   srv:url("app.git")  -> "http://127.0.0.1:PORT/git/app.git"
--   srv:repo_path("app.git") -> the bare repository on disk (create it with srv:bare(...))
--   srv:stop()
local proc = require "relua.proc"
local fs = require "relua.fs"

local M = {}

local BACKEND = "/usr/lib/git-core/git-http-backend"

local Server = {}
Server.__index = Server

--- The URL of a repository under the server's root.
function Server:url(name, with_user)
  if with_user then
    return string.format("http://%s@127.0.0.1:%d/git/%s", self.user, self.port, name)
  end
  return string.format("http://127.0.0.1:%d/git/%s", self.port, name)
end

function Server:repo_path(name)
  return self.root .. "/" .. name
end

--- Makes an empty bare repository served as name (e.g. "app.git"); returns its path.
function Server:bare(name)
  local path = self:repo_path(name)
  local r = assert(proc.run({ "git", "init", "-q", "--bare", "-b", "main", path }))
  assert(r.code == 0, r.stderr)
  return path
end

function Server:log()
  return (fs.read(self.dir .. "/error.log")) or ""
end

function Server:stop()
  if self.handle then
    self.handle:kill("TERM")
    local res = self.handle:wait(5)
    if res == nil or res.code == nil and res.signal == nil then self.handle:kill("KILL") end
    self.handle:close()
    self.handle = nil
  end
  if self.dir then
    fs.remove(self.dir, { recursive = true })
    self.dir = nil
  end
end

local listening = require("support.ports").listening

local CONF = [[
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_cgi", "mod_setenv")
server.bind = "127.0.0.1"
server.port = %d
server.document-root = "%s"
server.errorlog = "%s/error.log"
server.max-request-size = 1048576
server.feature-flags = ("auth.delay-invalid-creds" => "disable")
alias.url = ("/git/" => "%s/")
$HTTP["url"] =~ "^/git/" {
  cgi.assign = ("" => "")
  setenv.add-environment = ("GIT_PROJECT_ROOT" => "%s", "GIT_HTTP_EXPORT_ALL" => "1")
}
auth.backend = "plain"
auth.backend.plain.userfile = "%s/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
]]

--- Starts a server. opts: user (default "relua"), password (default "s3cret").
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({ user = opts.user or "relua", password = opts.password or "s3cret" }, Server)
  self.dir = assert(fs.tmpdir("relua-githttp"))
  self.root = self.dir .. "/repos"
  assert(fs.mkdir(self.root))
  assert(fs.mkdir(self.dir .. "/www"))
  assert(fs.write(self.dir .. "/users", self.user .. ":" .. self.password .. "\n"))
  math.randomseed(math.floor(proc.clock() * 1e6) + proc.pid())
  local deadline = proc.clock() + 10
  while proc.clock() < deadline do
    local port = math.random(20000, 60000)
    if not listening(port) then
      local conf = self.dir .. "/lighttpd.conf"
      assert(fs.write(conf, string.format(CONF, port, self.dir .. "/www", self.dir, BACKEND,
        self.root, self.dir)))
      local h = assert(proc.spawn({ "lighttpd", "-D", "-f", conf }, { capture = true }))
      local started = proc.clock()
      while h:running() and proc.clock() - started < 5 do
        if listening(port) then
          self.handle, self.port = h, port
          return self
        end
        os.execute("sleep 0.02")
      end
      local res = h:wait(2)
      h:close()
      if res and res.stderr and not res.stderr:match("in use") and not self:log():match("in use") then
        self:stop()
        error("lighttpd did not start: " .. tostring(res.stderr) .. self:log())
      end
    end
  end
  self:stop()
  error("lighttpd did not start within 10 s")
end

return M
