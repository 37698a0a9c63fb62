-- A real SSH git server for the specs: OpenSSH's sshd on 127.0.0.1 (a free port), public
-- key authentication only, with its own host key, authorized_keys and config in a temporary
-- folder; and an ssh-agent holding the client key (or none). Git runs through the login
-- shell of the current user (git-upload-pack / git-receive-pack on absolute paths).
-- Bounded in time: it starts within 10 s or fails; stop() kills everything and removes the
-- folder.
--
--   local srv = gitssh.start()
--   srv:url("/abs/path/app.git") -> "ssh://USER@127.0.0.1:PORT/abs/path/app.git"
--   srv.agent        -- SSH_AUTH_SOCK of an agent holding the authorized key
--   srv.empty_agent  -- SSH_AUTH_SOCK of an agent holding no key
--   srv.home         -- a HOME whose ~/.ssh/known_hosts trusts the server's host key
--   srv:stop()
local proc = require "relua.proc"
local fs = require "relua.fs"

local M = {}

local Server = {}
Server.__index = Server

function Server:url(path)
  return string.format("ssh://%s@127.0.0.1:%d%s", self.user, self.port, path)
end

function Server:stop()
  for _, k in ipairs({ "sshd", "agent_handle", "empty_handle" }) do
    local h = self[k]
    if h then
      h:kill("TERM")
      if not h:wait(5) then h:kill("KILL") end
      h:close()
      self[k] = nil
    end
  end
  if self.dir then
    fs.remove(self.dir, { recursive = true })
    self.dir = nil
  end
end

local listening = require("support.ports").listening

local function run(argv, opts)
  local r = assert(proc.run(argv, opts))
  assert(r.code == 0, table.concat(argv, " ") .. ": " .. r.stderr)
  return r
end

local function wait_for(path, what)
  local deadline = proc.clock() + 10
  while not fs.exists(path) do
    assert(proc.clock() < deadline, what .. " did not start within 10 s")
    os.execute("sleep 0.02")
  end
end

local CONF = [[
Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel ERROR
]]

--- Is an sshd available to run?
function M.available()
  return fs.exists("/usr/sbin/sshd")
end

function M.start()
  local self = setmetatable({}, Server)
  self.user = assert(proc.run({ "id", "-un" })).stdout:gsub("%s+$", "")
  self.dir = assert(fs.tmpdir("relua-gitssh"))
  local d = self.dir
  local ok, err = pcall(function()
    run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d .. "/host_key" })
    run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d .. "/client_key" })
    assert(fs.copy(d .. "/client_key.pub", d .. "/authorized_keys"))
    -- sshd started as root wants its privilege separation folder
    if proc.run({ "id", "-u" }).stdout:match("^0") then assert(fs.mkdir("/run/sshd")) end
    self.agent = d .. "/agent.sock"
    self.agent_handle = assert(proc.spawn({ "ssh-agent", "-D", "-a", self.agent }))
    self.empty_agent = d .. "/empty.sock"
    self.empty_handle = assert(proc.spawn({ "ssh-agent", "-D", "-a", self.empty_agent }))
    wait_for(self.agent, "ssh-agent")
    wait_for(self.empty_agent, "ssh-agent")
    -- the socket exists once bound, a moment before the agent listens: retry a refusal
    local added_by = proc.clock() + 10
    while true do
      local r = assert(proc.run({ "ssh-add", "-q", d .. "/client_key" }, { env = { SSH_AUTH_SOCK = self.agent } }))
      if r.code == 0 then break end
      assert(r.stderr:find("Connection refused", 1, true) and proc.clock() < added_by, "ssh-add: " .. r.stderr)
      proc.sleep(0.05)
    end
    math.randomseed(math.floor(proc.clock() * 1e6) + proc.pid())
    local deadline = proc.clock() + 10
    while proc.clock() < deadline do
      local port = math.random(20000, 60000)
      if not listening(port) then
        assert(fs.write(d .. "/sshd_config", string.format(CONF, port, d, d, d)))
        local h = assert(proc.spawn({ "/usr/sbin/sshd", "-D", "-e", "-f", d .. "/sshd_config" }))
        local started = proc.clock()
        while h:running() and proc.clock() - started < 5 do
          if listening(port) then
            self.sshd, self.port = h, port
            -- a HOME whose known_hosts trusts this server's host key
            self.home = d .. "/home"
            assert(fs.mkdir(self.home .. "/.ssh"))
            local key = assert(fs.read(d .. "/host_key.pub")):match("^(%S+ %S+)")
            assert(fs.write(self.home .. "/.ssh/known_hosts", string.format("[127.0.0.1]:%d %s\n", port, key)))
            return
          end
          os.execute("sleep 0.02")
        end
        local res = h:wait(2)
        h:close()
        if res and not (res.stderr or ""):match("in use") then
          error("sshd did not start: " .. tostring(res.stderr))
        end
      end
    end
    error("sshd did not start within 10 s")
  end)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

return M
