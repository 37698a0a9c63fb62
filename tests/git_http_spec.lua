-- relua.git against a real git smart-HTTP server: lighttpd + git-http-backend on 127.0.0.1
-- with Basic authentication (tests/support/githttp.lua), started and stopped here.
local git = require "relua.git"
local fs = require "relua.fs"
local proc = require "relua.proc"
local h = require "support.h"
local fix = require "support.gitfix"
local githttp = require "support.githttp"

local G = fix.git

describe("relua.git over smart HTTP", function()
  local srv, creds

  lazy_setup(function()
    srv = githttp.start({ user = "releaser", password = "s3cret" })
    creds = { username = "releaser", password = "s3cret", progress = false, timeout = 20 }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  after_each(fix.cleanup)

  -- A served bare repository and a local clone-like work tree pushing to it.
  local function setup(name)
    local bare = srv:bare(name)
    local work = fix.repo(fix.tmpdir() .. "/work")
    G(work, "remote", "add", "origin", srv:url(name))
    local repo = assert(git.open(work))
    assert(repo:push("origin", { "main" }, creds))
    return repo, work, bare
  end

  local function auth_failures()
    local n = 0
    for _ in srv:log():gmatch("password doesn't match") do n = n + 1 end
    return n
  end

  it("pushes, clones and fetches with Basic authentication", function()
    local repo <close>, work, bare = setup("app.git")
    assert.are.equal(G(work, "rev-parse", "HEAD"), G(bare, "rev-parse", "main"))
    local tmp = fix.tmpdir()
    local clone <close> = assert(git.clone(srv:url("app.git"), tmp .. "/clone", creds))
    assert.are.equal(G(work, "rev-parse", "HEAD"), clone:head().id)
    local new = fix.commit(work, "more work")
    assert(repo:push("origin", { "main" }, creds))
    assert.is_true(clone:fetch("origin", nil, creds))
    assert.are.equal(new, clone:rev_parse("origin/main"))
    local refs = assert(git.ls_remote(srv:url("app.git"), creds))
    local by = {}
    for _, r in ipairs(refs) do by[r.name] = r.id end
    assert.are.equal(new, by["refs/heads/main"])
  end)

  it("pushes a tag, then deletes a remote tag and a remote release branch", function()
    local repo <close>, work, bare = setup("tags.git")
    assert(repo:tag("v0.2.0", "HEAD", { message = "Release 0.2.0" }))
    assert(repo:push("origin", { "v0.2.0", "main:refs/heads/release/pypi-v0.2.0" }, creds))
    assert.are.equal(G(work, "rev-parse", "v0.2.0"), G(bare, "rev-parse", "v0.2.0"))
    assert.are.equal(G(work, "rev-parse", "HEAD"), G(bare, "rev-parse", "release/pypi-v0.2.0"))
    -- the orphan is visible from a fresh clone, and deleted from there
    local ci <close> = assert(git.clone(srv:url("tags.git"), fix.tmpdir() .. "/ci", creds))
    local orphans = ci:branches({ kind = "remote", glob = "origin/release/*" })
    assert.are.equal("origin/release/pypi-v0.2.0", orphans[1].name)
    assert(ci:push_delete_branch("origin", "release/pypi-v0.2.0", creds))
    assert(ci:push_delete_tag("origin", "v0.2.0", creds))
    assert.are.equal("", G(bare, "tag", "-l"))
    assert.are.equal("refs/heads/main", G(bare, "for-each-ref", "--format=%(refname)", "refs/heads"))
    local refs = assert(ci:ls_remote("origin", creds))
    for _, r in ipairs(refs) do assert.is_nil(r.name:match("release/")) end
  end)

  it("surfaces a push the server rejects (receive.denyNonFastForwards) naming the ref and the reason", function()
    local repo <close>, work, bare = setup("deny.git")
    G(bare, "config", "receive.denyNonFastForwards", "true")
    local other = fix.tmpdir() .. "/other"
    G("/", "clone", "-q", srv:url("deny.git", true):gsub("@", ":s3cret@", 1), other)
    local upstream = fix.commit(other, "theirs")
    G(other, "push", "-q", "origin", "main")
    fix.commit(work, "ours")
    -- without '+' the client refuses
    local ok, msg, code = repo:push("origin", { "main" }, creds)
    assert.is_nil(ok)
    assert.are.equal("ENONFASTFORWARD", code)
    -- with '+' the server refuses, and libgit2's "success" is not believed
    ok, msg, code = repo:push("origin", { "+main" }, creds)
    assert.is_nil(ok)
    assert.are.equal("EREJECTED", code)
    assert.matches("^git%.push origin: refs/heads/main rejected by the server: non%-fast%-forward", msg)
    assert.matches("remote: .*denying non%-fast%-forward refs/heads/main", msg)
    assert.are.equal(upstream, G(bare, "rev-parse", "main"))
  end)

  it("surfaces a hook that declines, with what the hook said", function()
    local repo <close>, _, bare = setup("hook.git")
    assert(fs.write(bare .. "/hooks/pre-receive", "#!/bin/sh\necho 'releases are frozen' >&2\nexit 1\n",
      { mode = tonumber("755", 8) }))
    local ok, msg, code = repo:push("origin", { "main:refs/heads/release/x" }, creds)
    assert.is_nil(ok)
    assert.are.equal("EREJECTED", code)
    assert.matches("refs/heads/release/x rejected by the server: pre%-receive hook declined", msg)
    assert.matches("releases are frozen", msg)
    assert.are_not.equal(0, fix.try(bare, "rev-parse", "--verify", "-q", "release/x").code)
  end)

  it("gives up on a wrong password after 3 attempts, naming the variables used", function()
    local _, work = setup("auth.git")
    local before = auth_failures()
    local script = string.format([[
      local git = require "relua.git"
      local repo = assert(git.open(%q))
      local ok, msg, code = repo:push("origin", { "main" }, { progress = false })
      print(tostring(ok), msg, code)
    ]], work)
    local r = h.relua({ "-e", script }, { env = {
      RELUA_GIT_USERNAME = "releaser", RELUA_GIT_PASSWORD = "wrong", RELUA_GIT_TOKEN = false } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(string.format("nil\tgit.push origin (%s): authentication failed after 3 attempts: "
      .. "the server refused the credentials from RELUA_GIT_USERNAME and RELUA_GIT_PASSWORD\tEAUTH\n",
      srv:url("auth.git")), r.stdout)
    assert.are.equal(3, auth_failures() - before)
    -- a token (sent as the password) that is wrong names RELUA_GIT_TOKEN
    r = h.relua({ "-e", script }, { env = {
      RELUA_GIT_USERNAME = false, RELUA_GIT_PASSWORD = false, RELUA_GIT_TOKEN = "bad-token" } })
    assert.matches("refused the credentials from RELUA_GIT_TOKEN\tEAUTH", r.stdout)
    -- the right ones from the environment work
    r = h.relua({ "-e", script }, { env = {
      RELUA_GIT_USERNAME = "releaser", RELUA_GIT_PASSWORD = "s3cret", RELUA_GIT_TOKEN = false } })
    assert.are.equal("true\ttable", r.stdout:match("^(%a+\t%a+)"))
    -- none at all says what to set
    r = h.relua({ "-e", script }, { env = {
      RELUA_GIT_USERNAME = false, RELUA_GIT_PASSWORD = false, RELUA_GIT_TOKEN = false } })
    assert.matches("authentication required: no credentials: set RELUA_GIT_TOKEN, or "
      .. "RELUA_GIT_USERNAME and RELUA_GIT_PASSWORD\tEAUTH", r.stdout)
  end)

  it("never shows a password from the URL in a message", function()
    local repo <close> = setup("secret.git")
    local url = srv:url("secret.git"):gsub("//", "//releaser:hunter2-secret@")
    local ok, msg, code = repo:push(url, { "main" }, { password = "wrong", progress = false })
    assert.is_nil(ok)
    assert.are.equal("EAUTH", code)
    assert.is_nil(msg:find("hunter2", 1, true), msg)
    assert.matches("releaser@127%.0%.0%.1", msg)
    local _, msg2 = git.clone(url:gsub("secret%.git", "missing.git"), fix.tmpdir() .. "/x", { password = "wrong", progress = false })
    assert.is_nil(msg2:find("hunter2", 1, true), msg2)
    assert.are.equal("https://bot@example.test/x.git", git.redact("https://bot:t0ken@example.test/x.git"))
  end)

  it("shows transfer progress on stderr when asked, and none by default off a terminal", function()
    local _, work = setup("progress.git")
    for i = 1, 3 do fix.commit(work, "c" .. i, "f" .. i .. ".txt", string.rep("x", 1000 * i)) end
    G(work, "push", "-q", srv:url("progress.git", true):gsub("@", ":s3cret@", 1), "main")
    local tmp = fix.tmpdir()
    local script = [[
      local git = require "relua.git"
      local url, dest, mode = ...
      local progress = mode == "on" or nil
      local repo, msg = git.clone(url, dest, { username = "releaser", password = "s3cret", progress = progress })
      print(repo and "cloned" or msg)
    ]]
    local r = h.relua({ "-", srv:url("progress.git"), tmp .. "/a", "on" }, { stdin = script })
    assert.are.equal("cloned\n", r.stdout, r.stderr)
    assert.matches("Receiving objects: 100%% %(%d+/%d+%)", r.stderr)
    r = h.relua({ "-", srv:url("progress.git"), tmp .. "/b", "off" }, { stdin = script })
    assert.are.equal("cloned\n", r.stdout, r.stderr)
    assert.are.equal("", r.stderr)
  end)

  it("stops a network operation on Ctrl-C with the interrupted error", function()
    local tmp = fix.tmpdir()
    local portfile = tmp .. "/port"
    local silent = assert(proc.spawn({ "python3", "-c", string.format([[
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
open(%q, "w").write(str(s.getsockname()[1]))
time.sleep(30)
]], portfile) }, { timeout = 30 }))
    local ok, err = pcall(function()
      local deadline = proc.clock() + 10
      while not fs.exists(portfile) or fs.read(portfile) == "" do
        assert(proc.clock() < deadline, "the silent server did not start")
        os.execute("sleep 0.02")
      end
      local url = "http://127.0.0.1:" .. fs.read(portfile) .. "/x.git"
      local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
      local child = assert(proc.spawn({ bin, "-e", string.format(
        "print('start'); io.stdout:flush(); print(require('relua.git').ls_remote(%q, { timeout = 20 }))", url) },
        { timeout = 15 }))
      os.execute("sleep 0.5")
      local t0 = proc.clock()
      child:kill("INT")
      local res = child:wait(10)
      child:close()
      assert.is_true(proc.clock() - t0 < 5)
      assert.are.equal(130, res.code, res.stderr)
      assert.matches("interrupted", res.stderr)
      assert.are.equal("start\n", res.stdout)
    end)
    silent:kill("KILL")
    silent:close()
    assert(ok, err)
  end)

  it("times out on a server that never answers", function()
    local tmp = fix.tmpdir()
    local portfile = tmp .. "/port"
    local silent = assert(proc.spawn({ "python3", "-c", string.format([[
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
open(%q, "w").write(str(s.getsockname()[1]))
time.sleep(30)
]], portfile) }, { timeout = 30 }))
    local ok, err = pcall(function()
      local deadline = proc.clock() + 10
      while not fs.exists(portfile) or fs.read(portfile) == "" do
        assert(proc.clock() < deadline, "the silent server did not start")
        os.execute("sleep 0.02")
      end
      local url = "http://127.0.0.1:" .. fs.read(portfile) .. "/x.git"
      local t0 = proc.clock()
      local refs, msg, code = git.ls_remote(url, { timeout = 0.5, progress = false })
      local took = proc.clock() - t0
      assert.is_nil(refs)
      assert.are.equal("ETIMEDOUT", code)
      assert.matches("timed out after 0%.5 s waiting for 127%.0%.0%.1:%d+", msg)
      assert.is_true(took < 5, "took " .. took .. " s")
    end)
    silent:kill("KILL")
    silent:close()
    assert(ok, err)
  end)
end)
