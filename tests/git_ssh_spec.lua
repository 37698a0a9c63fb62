-- relua.git over SSH against a real sshd on 127.0.0.1 (tests/support/gitssh.lua): keys come
-- from the SSH agent, the host key from ~/.ssh/known_hosts. relua runs as a subprocess so
-- that SSH_AUTH_SOCK and HOME are its own.
local fs = require "relua.fs"
local h = require "support.h"
local fix = require "support.gitfix"
local gitssh = require "support.gitssh"

local G = fix.git

describe("relua.git over SSH", function()
  local srv

  lazy_setup(function()
    srv = gitssh.start()
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  after_each(fix.cleanup)

  -- libgit2 1.5.1 leaks in its SSH transport: see tests/support/gitssh.supp, added to the
  -- suite's suppressions for these processes only (it only matters under the sanitizers).
  local lsan, asan
  lazy_setup(function()
    local supp = srv.dir .. "/lsan.supp"  -- removed with the server
    assert(fs.write(supp, (fs.read(h.root .. "/tests/lsan.supp") or "") .. "\n"
      .. assert(fs.read(h.root .. "/tests/support/gitssh.supp"))))
    local function opts(env, drop, add)
      local out = {}
      for o in (os.getenv(env) or ""):gmatch("[^:]+") do
        if not o:match("^" .. drop .. "=") then out[#out + 1] = o end
      end
      out[#out + 1] = add
      return table.concat(out, ":")
    end
    lsan = opts("LSAN_OPTIONS", "suppressions", "suppressions=" .. supp)
    asan = opts("ASAN_OPTIONS", "fast_unwind_on_malloc", "fast_unwind_on_malloc=0")
  end)

  -- Runs a relua script with the given agent and HOME; returns its stdout lines.
  local function relua(script, agent, home, ...)
    local r = h.relua({ "-", ... }, { stdin = script, env = { SSH_AUTH_SOCK = agent, HOME = home,
      LSAN_OPTIONS = lsan, ASAN_OPTIONS = asan } })
    assert.are.equal(0, r.code, r.stderr)
    return r.stdout
  end

  it("pushes, lists and clones with the key the agent holds", function()
    local tmp = fix.tmpdir()
    local bare = fix.bare(tmp .. "/app.git")
    local work = fix.repo(tmp .. "/work")
    local head = G(work, "rev-parse", "HEAD")
    local out = relua([[
      local git = require "relua.git"
      local work, url, dest = ...
      local repo = assert(git.open(work))
      print(repo:push(url, { "main" }, { progress = false }))
      for _, r in ipairs(assert(git.ls_remote(url))) do print(r.name, r.id) end
      local clone, msg = git.clone(url, dest, { progress = false })
      print(clone and clone:head().id or msg)
    ]], srv.agent, srv.home, work, srv:url(bare), tmp .. "/clone")
    assert.matches("^true\ttable", out)
    assert.matches("refs/heads/main\t" .. head, out)
    assert.matches("\n" .. head .. "\n$", out)
    assert.are.equal(head, G(bare, "rev-parse", "main"))
  end)

  it("says the agent has no key the server accepts", function()
    local bare = fix.bare(fix.tmpdir() .. "/app.git")
    local out = relua([[
      print(require("relua.git").ls_remote(..., { progress = false }))
    ]], srv.empty_agent, srv.home, srv:url(bare))
    assert.are.equal(string.format("nil\tgit.ls_remote %s: authentication failed: the SSH agent offered "
      .. "no key that %s accepts for user '%s' (ssh-add the key; is SSH_AUTH_SOCK set?)\tEAUTH\n",
      srv:url(bare), srv:url(bare), srv.user), out)
  end)

  it("refuses a server whose host key is unknown, saying what to do", function()
    local bare = fix.bare(fix.tmpdir() .. "/app.git")
    local out = relua([[
      print(require("relua.git").ls_remote(..., { progress = false }))
    ]], srv.agent, fix.tmpdir(), srv:url(bare))
    assert.matches("^nil\tgit%.ls_remote ssh://.*: invalid or unknown remote ssh hostkey %(the server's SSH host key "
      .. "is not in ~/%.ssh/known_hosts: check it and add it, e%.g%. with ssh%-keyscan%)\tECERTIFICATE\n$", out)
  end)
end)
