local fs = require "relua.fs"
local proc = require "relua.proc"
local h = require "support.h"

local function sh(cmd)
  return assert(proc.sh(cmd)).stdout
end

describe("relua.fs", function()
  local d
  before_each(function() d = h.tmpdir() end)
  after_each(h.cleanup)

  describe("read and write", function()
    it("round-trips bytes, binary included", function()
      local data = "line\n\0\255binary" .. string.rep("x", 200000)
      assert.is_true(fs.write(d .. "/f", data))
      assert.are.equal(data, fs.read(d .. "/f"))
      assert.are.equal(data, h.slurp(d .. "/f"))
      assert.is_true(fs.write(d .. "/empty", ""))
      assert.are.equal("", fs.read(d .. "/empty"))
    end)

    it("names the path and the reason when reading fails", function()
      local v, msg, code = fs.read(d .. "/missing")
      assert.is_nil(v)
      assert.are.equal("fs.read: " .. d .. "/missing: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
      v, msg, code = fs.read(d)
      assert.is_nil(v)
      assert.are.equal("fs.read: " .. d .. ": Is a directory", msg)
      assert.are.equal("EISDIR", code)
    end)

    it("replaces a file atomically, keeping its mode, leaving no temp file", function()
      h.spit(d .. "/f", "old")
      os.execute("chmod 0640 " .. d .. "/f")
      assert.is_true(fs.write(d .. "/f", "new"))
      assert.are.equal("new", fs.read(d .. "/f"))
      assert.are.equal(tonumber("0640", 8), fs.stat(d .. "/f").mode)
      assert.is_true(fs.write(d .. "/g", "x", { mode = tonumber("0600", 8) }))
      assert.are.equal(tonumber("0600", 8), fs.stat(d .. "/g").mode)
      assert.are.same({ "f", "g" }, fs.list(d))
    end)

    it("names an unwritable path and leaves the old file and no temp file", function()
      fs.mkdir(d .. "/ro")
      h.spit(d .. "/ro/f", "old")
      os.execute("chmod 0555 " .. d .. "/ro")
      local ok, msg, code
      if sh("id -u") == "0\n" then
        -- root writes anywhere: a path under a file fails for everyone
        ok, msg, code = fs.write(d .. "/ro/f/x", "new")
        assert.is_nil(ok)
        assert.are.equal("fs.write: " .. d .. "/ro/f/x: Not a directory", msg)
        assert.are.equal("ENOTDIR", code)
      else
        ok, msg, code = fs.write(d .. "/ro/f", "new")
        assert.is_nil(ok)
        assert.are.equal("fs.write: " .. d .. "/ro/f: Permission denied", msg)
        assert.are.equal("EACCES", code)
      end
      os.execute("chmod 0755 " .. d .. "/ro")
      assert.are.equal("old", fs.read(d .. "/ro/f"))
      assert.are.same({ "f" }, fs.list(d .. "/ro"))
    end)

    it("leaves no temp file when the rename fails", function()
      fs.mkdir(d .. "/target")
      fs.write(d .. "/target/keep", "x")
      local ok, msg, code = fs.write(d .. "/target", "data")  -- a folder is in the way
      assert.is_nil(ok)
      assert.are.equal("fs.write: " .. d .. "/target: Is a directory", msg)
      assert.are.equal("EISDIR", code)
      assert.are.same({ "target" }, fs.list(d))
    end)

    it("appends, creating the file, with and without sync", function()
      assert.is_true(fs.append(d .. "/log", "a\n"))
      assert.is_true(fs.append(d .. "/log", "b\n", { sync = true }))
      assert.are.equal("a\nb\n", fs.read(d .. "/log"))
      local ok, msg = fs.append(d .. "/no/log", "x")
      assert.is_nil(ok)
      assert.are.equal("fs.append: " .. d .. "/no/log: No such file or directory", msg)
    end)

    it("keeps appended lines from parallel writers whole", function()
      local log = d .. "/log"
      local line = string.rep("y", 3000) .. "\n"
      local script = string.format([[local fs = require "relua.fs" for i = 1, 200 do fs.append(%q, %q) end]], log, line)
      local ps = {}
      for i = 1, 3 do ps[i] = assert(proc.spawn { h.bin, "-e", script }) end
      for i = 1, 3 do assert.are.equal(0, ps[i]:wait().code) ps[i]:close() end
      local content = fs.read(log)
      assert.are.equal(600 * #line, #content)
      for l in content:gmatch("[^\n]*\n") do assert.are.equal(line, l) end
    end)

    it("refuses wrong argument types", function()
      assert.has_error(function() fs.read(nil) end, "bad argument #1 to 'fs.read' (string expected, got nil)")
      assert.has_error(function() fs.write("x", nil) end, "bad argument #2 to 'fs.write' (string expected, got nil)")
    end)
  end)

  describe("exists, stat, mkdir, list", function()
    it("tells files, folders and links apart", function()
      h.spit(d .. "/f", "12345")
      os.execute("ln -s f " .. d .. "/l")
      assert.is_true(fs.exists(d .. "/f"))
      assert.is_false(fs.exists(d .. "/none"))
      local st = fs.stat(d .. "/f")
      assert.are.equal("file", st.type)
      assert.are.equal(5, st.size)
      assert.is_true(math.abs(st.mtime - os.time()) < 100)
      assert.are.equal("directory", fs.stat(d).type)
      assert.are.equal("link", fs.stat(d .. "/l").type)
      assert.are.equal("file", fs.stat(d .. "/l", { follow = true }).type)
      assert.are.equal("f", fs.readlink(d .. "/l"))
      local v, msg, code = fs.stat(d .. "/none")
      assert.is_nil(v)
      assert.are.equal("fs.stat: " .. d .. "/none: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
    end)

    it("makes folders like mkdir -p", function()
      assert.is_true(fs.mkdir(d .. "/a/b/c"))
      assert.is_true(fs.mkdir(d .. "/a/b/c"))
      assert.are.equal("directory", fs.stat(d .. "/a/b/c").type)
      h.spit(d .. "/file", "")
      local ok, msg, code = fs.mkdir(d .. "/file/sub")
      assert.is_nil(ok)
      assert.matches("fs.mkdir: " .. d .. "/file/sub", msg, 1, true)
      assert.are.equal("ENOTDIR", code)
    end)

    it("lists names sorted, without . and ..", function()
      for _, n in ipairs { "b", "a", ".hidden", "c" } do h.spit(d .. "/" .. n, "") end
      assert.are.same({ ".hidden", "a", "b", "c" }, fs.list(d))
      local v, msg, code = fs.list(d .. "/none")
      assert.is_nil(v)
      assert.are.equal("fs.list: " .. d .. "/none: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
    end)
  end)

  describe("remove and copy", function()
    it("removes files; a folder only when asked, without following links", function()
      h.spit(d .. "/f", "")
      assert.is_true(fs.remove(d .. "/f"))
      assert.is_false(fs.exists(d .. "/f"))
      local outside = h.tmpdir()
      h.spit(outside .. "/precious", "keep")
      fs.mkdir(d .. "/tree/sub")
      h.spit(d .. "/tree/sub/x", "")
      os.execute("ln -s " .. outside .. " " .. d .. "/tree/link")
      local ok, msg, code = fs.remove(d .. "/tree")
      assert.is_nil(ok)
      assert.matches("is a folder", msg)
      assert.are.equal("EISDIR", code)
      assert.is_true(fs.remove(d .. "/tree", { recursive = true }))
      assert.is_false(fs.exists(d .. "/tree"))
      assert.are.equal("keep", fs.read(outside .. "/precious"))
      ok, msg, code = fs.remove(d .. "/none")
      assert.is_nil(ok)
      assert.are.equal("ENOENT", code)
    end)

    it("copies content and permissions, into a folder too", function()
      local data = string.rep("z", 300000)
      h.spit(d .. "/src", data)
      os.execute("chmod 0750 " .. d .. "/src")
      assert.is_true(fs.copy(d .. "/src", d .. "/dst"))
      assert.are.equal(data, fs.read(d .. "/dst"))
      assert.are.equal(tonumber("0750", 8), fs.stat(d .. "/dst").mode)
      fs.mkdir(d .. "/into")
      assert.is_true(fs.copy(d .. "/src", d .. "/into"))
      assert.are.equal(data, fs.read(d .. "/into/src"))
    end)

    it("names the missing source and leaves nothing behind", function()
      local ok, msg, code = fs.copy(d .. "/none", d .. "/dst")
      assert.is_nil(ok)
      assert.are.equal("fs.copy: " .. d .. "/none: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
      h.spit(d .. "/src", "x")
      ok, msg = fs.copy(d .. "/src", d .. "/no/dst")
      assert.is_nil(ok)
      assert.are.equal("fs.copy: " .. d .. "/no/dst: No such file or directory", msg)
      assert.are.same({ "src" }, fs.list(d))
    end)

    it("makes private temporary folders", function()
      local t = assert(fs.tmpdir("relua-spec"))
      assert.matches("/relua%-spec%.[%w]+$", t)
      assert.are.equal(tonumber("0700", 8), fs.stat(t).mode)
      assert.is_true(fs.remove(t, { recursive = true }))
    end)
  end)

  describe("paths", function()
    it("splits and joins", function()
      assert.are.equal("a/b", fs.dirname("a/b/c"))
      assert.are.equal(".", fs.dirname("c"))
      assert.are.equal("/", fs.dirname("/c"))
      assert.are.equal("/", fs.dirname("/"))
      assert.are.equal("a", fs.dirname("a/b/"))
      assert.are.equal("c.txt", fs.basename("a/b/c.txt"))
      assert.are.equal("b", fs.basename("a/b/"))
      assert.are.equal("b", fs.basename("a//b//"))
      assert.are.equal("c", fs.basename("/c"))
      assert.are.equal("c", fs.basename("c"))
      assert.are.equal("/", fs.basename("///"))
      assert.are.equal("", fs.basename(""))
      assert.are.equal("a/b/c", fs.join("a", "b/", "c"))
      assert.are.equal("/x/y", fs.join("a", "/x", "y"))
      assert.are.equal("/a/c", fs.abspath("/a/b/../c/."))
      assert.are.equal(fs.cwd() .. "/x", fs.abspath("x"))
    end)
  end)

  describe("glob", function()
    before_each(function()
      for _, p in ipairs { "a.lua", "b.lua", "c.txt", ".hidden.lua", "sub/d.lua", "sub/deep/e.lua",
        "sub/deep/f.txt", "x1.md", "x2.md", "xa.md", ".git/g.lua" } do
        fs.mkdir(fs.dirname(d .. "/" .. p))
        h.spit(d .. "/" .. p, "")
      end
    end)

    it("matches * ? and [..] per segment, sorted, skipping dot files", function()
      assert.are.same({ d .. "/a.lua", d .. "/b.lua" }, fs.glob(d .. "/*.lua"))
      assert.are.same({ d .. "/x1.md", d .. "/x2.md", d .. "/xa.md" }, fs.glob(d .. "/x?.md"))
      assert.are.same({ d .. "/x1.md", d .. "/x2.md" }, fs.glob(d .. "/x[0-9].md"))
      assert.are.same({ d .. "/xa.md" }, fs.glob(d .. "/x[!0-9].md"))
      assert.are.same({ d .. "/.hidden.lua" }, fs.glob(d .. "/.*.lua"))
      assert.are.same({ d .. "/sub/d.lua" }, fs.glob(d .. "/*/*.lua"))
    end)

    it("matches any depth with **", function()
      assert.are.same({ d .. "/a.lua", d .. "/b.lua", d .. "/sub/d.lua", d .. "/sub/deep/e.lua" },
        fs.glob(d .. "/**/*.lua"))
      assert.are.same({ d .. "/sub/deep/e.lua", d .. "/sub/deep/f.txt" }, fs.glob(d .. "/sub/**/deep/*"))
      assert.are.same({ d .. "/sub", d .. "/sub/d.lua", d .. "/sub/deep", d .. "/sub/deep/e.lua", d .. "/sub/deep/f.txt" },
        fs.glob(d .. "/sub/**"))
    end)

    it("returns {} when nothing matches, and literal paths when they exist", function()
      assert.are.same({}, fs.glob(d .. "/*.none"))
      assert.are.same({}, fs.glob(d .. "/missing/*"))
      assert.are.same({ d .. "/c.txt" }, fs.glob(d .. "/c.txt"))
      assert.are.same({}, fs.glob(d .. "/nope.txt"))
    end)

    it("works with relative patterns", function()
      local r = h.relua({ "-e", [[for _, p in ipairs(require("relua.fs").glob("sub/**/*.lua")) do print(p) end]] }, { cwd = d })
      assert.are.equal("sub/d.lua\nsub/deep/e.lua\n", r.stdout)
    end)

    it("treats pattern magic of Lua as plain characters", function()
      h.spit(d .. "/v1.0-rc(1)%.txt", "")
      assert.are.same({ d .. "/v1.0-rc(1)%.txt" }, fs.glob(d .. "/v1.0-rc(*)%.txt"))
    end)
  end)

  describe("digests and base64", function()
    local vectors = {
      { "", "sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
      { "abc", "sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
      { "abc", "sha1", "a9993e364706816aba3e25717850c26c9cd0d89d" },
      { "abc", "md5", "900150983cd24fb0d6963f7d28e17f72" },
      { "abc", "sha512", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
    }

    it("hashes strings to the known vectors", function()
      for _, v in ipairs(vectors) do
        assert.are.equal(v[3], fs.hash(v[1], v[2]))
      end
      assert.are.equal("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", fs.hash("abc", "sha256", "base64"))
      assert.are.equal(32, #fs.hash("abc", "sha256", "raw"))
    end)

    it("digests files the same as sha256sum and openssl", function()
      local data = {}
      for i = 1, 30000 do data[i] = string.format("%d line of the file\n", i) end
      local path = h.spit(d .. "/big", table.concat(data))
      for _, algo in ipairs { "sha256", "sha512", "sha1", "md5" } do
        local want = sh(algo .. "sum " .. path):match("^(%x+)")
        assert.are.equal(want, fs.digest(path, algo))
      end
      local want64 = sh("openssl dgst -sha256 -binary " .. path .. " | base64 -w0")
      assert.are.equal(want64, fs.digest(path, "sha256", "base64"))
    end)

    it("names a file it cannot digest and refuses unknown algorithms", function()
      local v, msg, code = fs.digest(d .. "/none", "sha256")
      assert.is_nil(v)
      assert.are.equal("fs.digest: " .. d .. "/none: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
      assert.has_error(function() fs.hash("x", "sha3") end, "fs.hash: unknown algorithm 'sha3' (sha256, sha512, sha1, md5)")
      assert.has_error(function() fs.digest(d .. "/none", "SHA256") end, "fs.digest: unknown algorithm 'SHA256' (sha256, sha512, sha1, md5)")
      assert.has_error(function() fs.hash("x", "sha256", "octal") end, "fs.hash: unknown format 'octal' (hex, base64, raw)")
    end)

    it("digests a large file in constant memory #rss", function()
      local path = d .. "/large"
      sh("head -c 100000000 /dev/zero > " .. path)
      local want = sh("sha256sum " .. path):match("^(%x+)")
      local r = h.relua { "-e", string.format([[
        print(require("relua.fs").digest(%q, "sha256"))
        for l in io.lines("/proc/self/status") do
          local kb = l:match("^VmHWM:%%s+(%%d+)") if kb then print(kb) end
        end]], path) }
      local got, kb = r.stdout:match("^(%x+)\n(%d+)\n$")
      assert.are.equal(want, got)
      assert.is_true(tonumber(kb) < 40000, "peak RSS " .. tostring(kb) .. " kB")
    end)

    it("encodes and decodes base64", function()
      local cases = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", ["\0\255\254"] = "AP/+" }
      for plain, enc in pairs(cases) do
        assert.are.equal(enc, fs.base64(plain))
        assert.are.equal(plain, fs.unbase64(enc))
      end
      assert.are.equal("foob", fs.unbase64("Zm9v\nYg"))   -- line breaks, missing padding
      assert.are.equal("\0\255\254", fs.unbase64("AP_-"))  -- URL-safe alphabet
      local big = string.rep("\1\2\3\250", 10000)
      assert.are.equal(big, fs.unbase64(fs.base64(big)))
      assert.are.equal(sh("printf 'hello world' | base64 -w0"), fs.base64("hello world"))
      local v, msg = fs.unbase64("not*base64")
      assert.is_nil(v)
      assert.matches("fs.unbase64: not base64", msg, 1, true)
    end)
  end)

  it("leaks no descriptors, on success or failure", function()
    local function count()
      collectgarbage() collectgarbage()
      return #assert(fs.list("/proc/self/fd"))
    end
    h.spit(d .. "/src", "data")
    local before = count()
    for _ = 1, 20 do
      fs.read(d .. "/src") fs.read(d .. "/none") fs.read(d)
      fs.write(d .. "/w", "x") fs.write(d .. "/none/w", "x")
      fs.append(d .. "/a", "x", { sync = true }) fs.append(d .. "/none/a", "x")
      fs.copy(d .. "/src", d .. "/dst") fs.copy(d .. "/none", d .. "/dst") fs.copy(d .. "/src", d .. "/none/dst")
      fs.list(d) fs.list(d .. "/none")
      fs.digest(d .. "/src", "sha256") fs.digest(d .. "/none", "md5")
      local l = assert(fs.lock(d .. "/l"))
      fs.lock(d .. "/l") fs.lock(d .. "/l", { wait = 0.01 }) fs.lock(d .. "/none/l")
      l:close()
      fs.lock(d .. "/l2")  -- dropped without close: garbage collection releases it
    end
    assert.are.equal(before, count())
    assert.are.same({ "a", "dst", "l", "l2", "src", "w" }, fs.list(d))
  end)

  describe("lock", function()
    it("is exclusive, records its holder, and releases on close", function()
      local path = d .. "/ticket.lock"
      local lock = assert(fs.lock(path))
      local holder = lock:holder()
      assert.are.equal(proc.pid(), holder.pid)
      assert.are.equal(sh("hostname"):gsub("\n$", ""), holder.host)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", holder.since)
      assert.matches("^pid=%d+ host=%S+ since=%S+\n$", fs.read(path))
      local again, msg, code, who = fs.lock(path)
      assert.is_nil(again)
      assert.are.equal("locked", code)
      assert.are.same(holder, who)
      lock:close()
      lock:close()
      local l2 = assert(fs.lock(path))
      l2:close()
    end)

    it("reports a holder in another process, and waits for it with wait=", function()
      local path = d .. "/ticket.lock"
      local ready = d .. "/ready"
      local holder = assert(proc.spawn { h.bin, "-e", string.format([[
        local fs = require "relua.fs"
        local l = assert(fs.lock(%q))
        fs.write(%q, "")
        require("relua.proc").run({"sleep", "0.8"})
        l:close()
      ]], path, ready) })
      for _ = 1, 200 do
        if fs.exists(ready) then break end
        proc.run { "sleep", "0.02" }
      end
      local lock, msg, code, who = fs.lock(path)
      assert.is_nil(lock)
      assert.are.equal("locked", code)
      assert.are.equal(holder:pid(), who.pid)
      assert.are.equal(string.format("fs.lock: %s is held by pid %d on %s since %s", path, who.pid, who.host, who.since), msg)
      lock, msg, code = fs.lock(path, { wait = 0.1 })
      assert.is_nil(lock)
      assert.are.equal("locked", code)
      local t0 = proc.clock()
      lock = assert(fs.lock(path, { wait = true }))
      assert.is_true(proc.clock() - t0 < 5)
      assert.are.equal(proc.pid(), lock:holder().pid)
      assert.are.equal(0, holder:wait().code)
      holder:close()
      lock:close()
    end)

    it("releases on <close> and on garbage collection", function()
      local path = d .. "/l"
      do
        local _ <close> = assert(fs.lock(path))
      end
      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = assert(fs.lock(path))
      assert.is_nil((fs.lock(path)))
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      local l = assert(fs.lock(path))
      l:close()
      assert.has_error(function() l:holder() end, "fs.lock: the lock is released")
    end)

    it("stops waiting for a lock on Ctrl-C (exit 130)", function()
      local path = d .. "/l"
      local lock = assert(fs.lock(path))
      local p = assert(proc.spawn { h.bin, "-e", string.format([[
        io.stdout:write("waiting\n") io.stdout:flush()
        require("relua.fs").lock(%q, {wait = true})
        print("not reached")]], path) })
      proc.run { "sleep", "0.3" }
      assert.is_true(p:running())
      p:kill("INT")
      local r = p:wait(10)
      p:close()
      lock:close()
      assert.is_false(r.timed_out)
      assert.are.equal(130, r.code)
      assert.are.equal("waiting\n", r.stdout)
      assert.matches("interrupted", r.stderr)
    end)

    it("names a lock file it cannot create", function()
      local l, msg, code = fs.lock(d .. "/none/l")
      assert.is_nil(l)
      assert.are.equal("fs.lock: " .. d .. "/none/l: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
    end)
  end)
end)
