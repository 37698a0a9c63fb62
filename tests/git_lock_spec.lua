-- A kill inside libgit2 leaves a ref's .lock file behind (issue 9, item 1). relua is killed
-- for real (strace's fault injection, at the rename that would have replaced the lock)
-- while tagging in the local repository and while pushing the tag to a file remote; a plain
-- re-run must then finish, and a lock that a live process holds is named with what to do.
local S = require "support.release"
local h = require "support.h"

local function esc(s) return (s:gsub("%p", "%%%0")) end

local RECIPE = [[
local git = require "relua.git"
return { phases = {
  { name = "tag", run = function(r)
      local repo <close> = assert(git.open("work"))
      assert(repo:tag("v" .. r.ticket))
      assert(repo:push("REMOTE", { "v" .. r.ticket }))
    end },
} }
]]

local function setup()
  local s = S.sandbox()
  h.sh("git init -q -b main work && git -C work -c user.name=a -c user.email=a@b commit -q --allow-empty -m one"
    .. " && git init -q --bare remote.git", { cwd = s.dir })
  s:write("release.lua", (RECIPE:gsub("REMOTE", s.dir .. "/remote.git")))
  return s
end

-- Runs relua under strace, killed (SIGKILL) at the first rename of `lock`.
local function killed_at_rename(s, lock)
  local cmd = string.format("strace -f -qq -o /dev/null -P %s -e trace=link,linkat,rename,renameat,renameat2 "
    .. "-e inject=link,linkat,rename,renameat,renameat2:signal=KILL:when=1 %s release.lua 1 2>&1; exit $?",
    h.quote(lock), h.quote(S.bin()))
  return h.sh(cmd, { cwd = s.dir, env = { RELUA_HOME = false } })
end

local function head(s, dir, ref)
  return h.sh("git -C " .. dir .. " rev-parse -q --verify " .. ref .. " || true", { cwd = s.dir }).stdout
end

describe("a stale git lock file left by a kill inside libgit2", function()
  after_each(S.cleanup)

  it("in the local repository: the re-run removes it, says so and finishes", function()
    local s = setup()
    local lock = s.dir .. "/work/.git/refs/tags/v1.lock"
    local r = killed_at_rename(s, lock)
    assert.are_not.equal(0, r.code)
    assert.is_true(s:exists("work/.git/refs/tags/v1.lock"))      -- what the kill left
    assert.are.equal("", head(s, "work", "refs/tags/v1"))
    r = s:relua({ "release.lua", "1" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("removed the stale lock file " .. esc(lock), r.stdout .. r.stderr)
    assert.is_false(s:exists("work/.git/refs/tags/v1.lock"))
    assert.are.equal(head(s, "work", "HEAD"), head(s, "remote.git", "refs/tags/v1"))
  end)

  it("in the remote repository: the re-run removes it and pushes the tag once", function()
    local s = setup()
    local lock = s.dir .. "/remote.git/refs/tags/v1.lock"
    local r = killed_at_rename(s, lock)
    assert.are_not.equal(0, r.code)
    assert.is_true(s:exists("remote.git/refs/tags/v1.lock"))
    r = s:relua({ "release.lua", "1" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("removed the stale lock file " .. esc(lock), r.stdout .. r.stderr)
    assert.are.equal(head(s, "work", "HEAD"), head(s, "remote.git", "refs/tags/v1"))
  end)

  it("a lock left by a writer that died a moment before the run began is stale", function()
    -- The writer exits and relua starts at once, inside one clock tick of the kernel's
    -- process start time (which also counts from the fork of the shell, before the file).
    local s = setup()
    local lock = s.dir .. "/work/.git/refs/tags/v1.lock"
    local r = h.sh("touch work/.git/refs/tags/v1.lock && exec " .. h.quote(S.bin()) .. " release.lua 1 2>&1",
      { cwd = s.dir, env = { RELUA_HOME = false } })
    assert.are.equal(0, r.code, r.stdout)
    assert.matches("removed the stale lock file " .. esc(lock), r.stdout)
    assert.are.equal(head(s, "work", "HEAD"), head(s, "remote.git", "refs/tags/v1"))
  end)

  it("a lock held by a live process is not touched: the message names it and what to do", function()
    local s = setup()
    s:write("work/.git/refs/tags/v1.lock", "")
    -- a process that holds the lock open, as a git writer does
    local holder = h.sh("(sleep 30 < work/.git/refs/tags/v1.lock & echo $!)", { cwd = s.dir }).stdout:match("%d+")
    local r = s:relua({ "release.lua", "1" })
    h.sh("kill " .. holder)
    assert.are.equal(1, r.code)
    assert.matches("the git lock file " .. esc(s.dir .. "/work/.git/refs/tags/v1.lock")
      .. " is held by process %d+ %(a git command is writing there%): wait for it to finish", r.stderr)
    assert.is_true(s:exists("work/.git/refs/tags/v1.lock"))
  end)

  it("a lock newer than the run is named with the command to remove it", function()
    local s = setup()
    s:write("release.lua", ([[
local git = require "relua.git"
return { phases = { { name = "tag", run = function(r)
  io.open("work/.git/refs/tags/v1.lock", "w"):close()   -- another writer, just now
  local repo <close> = assert(git.open("work"))
  assert(repo:tag("v1"))
end } } }
]]))
    local r = s:relua({ "release.lua", "1" })
    assert.are.equal(1, r.code)
    local lock = s.dir .. "/work/.git/refs/tags/v1.lock"
    assert.matches("the git lock file " .. esc(lock) .. " is in the way .* remove it: rm '" .. esc(lock) .. "'", r.stderr)
    assert.is_true(s:exists("work/.git/refs/tags/v1.lock"))
  end)

  it("a tag already at the right commit needs no lock, locally or on the remote", function()
    local s = setup()
    assert.are.equal(0, s:relua({ "release.lua", "1" }).code)
    s:write("work/.git/refs/tags/v1.lock", "")
    s:write("remote.git/refs/tags/v1.lock", "")
    -- both held open by a live process: relua may not remove them, and need not
    local holder = h.sh("(sleep 30 < work/.git/refs/tags/v1.lock 3< remote.git/refs/tags/v1.lock & echo $!)",
      { cwd = s.dir }).stdout:match("%d+")
    local r = s:relua({ "release.lua", "1", "--from=tag" })
    h.sh("kill " .. holder)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.is_nil((r.stdout .. r.stderr):find("lock file", 1, true), r.stdout .. r.stderr)
    assert.is_true(s:exists("work/.git/refs/tags/v1.lock"))
    assert.is_true(s:exists("remote.git/refs/tags/v1.lock"))
  end)
end)
