local proc = require "relua.proc"
local fs = require "relua.fs"
local h = require "support.h"

-- True while a process with this pid exists (and is not a zombie we could reap).
local function alive(pid)
  local r = proc.run({ "sh", "-c", "kill -0 " .. pid .. " 2>/dev/null && ! grep -q '^State:.*Z' /proc/" .. pid .. "/status" })
  return r.code == 0
end

describe("relua.proc", function()
  after_each(h.cleanup)

  describe("run", function()
    it("returns exit codes, and a non-zero exit is not an error", function()
      local r = assert(proc.run { "true" })
      assert.are.equal(0, r.code)
      assert.is_nil(r.signal)
      r = assert(proc.run { "sh", "-c", "exit 7" })
      assert.are.equal(7, r.code)
      assert.is_false(r.timed_out)
      assert.is_true(r.duration >= 0 and r.duration < 10)
    end)

    it("captures stdout and stderr apart", function()
      local r = assert(proc.run { "sh", "-c", "echo out; echo err >&2; printf 'no newline'" })
      assert.are.equal("out\nno newline", r.stdout)
      assert.are.equal("err\n", r.stderr)
    end)

    it("passes arguments as they are, with no shell in between", function()
      local r = assert(proc.run { "printf", "%s|", "a b", "$HOME", "*", "'q'" })
      assert.are.equal("a b|$HOME|*|'q'|", r.stdout)
    end)

    it("accepts numbers in argv", function()
      assert.are.equal("3\n", proc.run({ "echo", 3 }).stdout)
    end)

    it("reports the signal that ended the child", function()
      local r = assert(proc.run { "sh", "-c", "kill -KILL $$" })
      assert.is_nil(r.code)
      assert.are.equal(9, r.signal)
    end)

    it("says which program is missing", function()
      local r, msg, code = proc.run { "relua-no-such-program", "x" }
      assert.is_nil(r)
      assert.are.equal("proc.run: not found: relua-no-such-program", msg)
      assert.are.equal("ENOENT", code)
      r, msg, code = proc.run { "/nonexistent/prog" }
      assert.are.equal("proc.run: not found: /nonexistent/prog", msg)
      assert.are.equal("ENOENT", code)
    end)

    it("says when a program cannot be executed", function()
      local d = h.tmpdir()
      h.spit(d .. "/script", "#!/bin/sh\necho hi\n")
      local r, msg, code = proc.run { d .. "/script" }
      assert.is_nil(r)
      assert.are.equal("EACCES", code)
      assert.matches("proc.run: cannot run: " .. d .. "/script: Permission denied", msg, 1, true)
    end)

    it("feeds stdin, also more than a pipe holds, while reading output", function()
      local big = string.rep("0123456789abcdef", 65536)  -- 1 MiB
      local r = assert(proc.run({ "cat" }, { stdin = big }))
      assert.are.equal(#big, #r.stdout)
      assert.are.equal(big, r.stdout)
      r = assert(proc.run({ "sh", "-c", "read x; echo got:$x" }, { stdin = "line\n" }))
      assert.are.equal("got:line\n", r.stdout)
    end)

    it("gives the child /dev/null as stdin by default", function()
      local r = assert(proc.run { "cat" })
      assert.are.equal(0, r.code)
      assert.are.equal("", r.stdout)
    end)

    it("lets the child read our stdin with stdin=true, in our process group", function()
      local r = h.relua({ "-e", [[
        local proc = require "relua.proc"
        local a = proc.run({"sh", "-c", "cat; cut -d' ' -f5 /proc/$$/stat"}, {stdin = true})
        local b = proc.run({"sh", "-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"})
        local mine = io.open("/proc/self/stat"):read("a"):match("^%d+ %b() %S+ %d+ (%d+)")
        local pg, pid = b.stdout:match("^(%d+)\n(%d+)\n$")
        io.write(a.stdout, tostring(a.stdout:match("(%d+)\n$") == mine), " ", tostring(pg == pid and pg ~= mine), "\n")
      ]] }, { stdin = "from the pipe\n" })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("^from the pipe\n%d+\ntrue true\n$", r.stdout)
    end)

    it("survives a child that does not read its stdin", function()
      local r = assert(proc.run({ "true" }, { stdin = string.rep("x", 1 << 20) }))
      assert.are.equal(0, r.code)
    end)

    it("adds to, replaces and unsets environment variables", function()
      local r = assert(proc.run({ "sh", "-c", 'echo "$RELUA_T1|${HOME-unset}|$PATH"' },
        { env = { RELUA_T1 = "one", HOME = false } }))
      assert.are.equal("one|unset|" .. os.getenv("PATH") .. "\n", r.stdout)
      r = assert(proc.run({ "/usr/bin/env" }, { env = { ONLY = "me" }, env_replace = true }))
      assert.are.equal("ONLY=me\n", r.stdout)
      r = assert(proc.run({ "sh", "-c", "echo $HOME" }, { env = { HOME = "/elsewhere" } }))
      assert.are.equal("/elsewhere\n", r.stdout)
    end)

    it("looks the program up in the PATH of the child's environment", function()
      local d = h.tmpdir()
      h.spit(d .. "/relua-test-tool", "#!/bin/sh\necho private tool\n")
      os.execute("chmod +x " .. d .. "/relua-test-tool")
      assert.is_nil(proc.run { "relua-test-tool" })
      local r = assert(proc.run({ "relua-test-tool" }, { env = { PATH = d .. ":/usr/bin:/bin" } }))
      assert.are.equal("private tool\n", r.stdout)
    end)

    it("runs in cwd, and names a cwd that does not exist", function()
      local d = h.tmpdir()
      local r = assert(proc.run({ "pwd" }, { cwd = d }))
      assert.are.equal(d .. "\n", r.stdout)
      local r2, msg, code = proc.run({ "pwd" }, { cwd = d .. "/missing" })
      assert.is_nil(r2)
      assert.are.equal("proc.run: cwd: " .. d .. "/missing: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
    end)

    it("kills the whole process group on timeout, grandchildren too", function()
      local d = h.tmpdir()
      local t0 = proc.clock()
      local r = assert(proc.run({ "sh", "-c", "sleep 100 & echo $! > " .. d .. "/gc; wait" }, { timeout = 0.3 }))
      local took = proc.clock() - t0
      assert.is_true(r.timed_out)
      assert.is_nil(r.code)
      assert.are.equal(15, r.signal)
      assert.is_true(took < 5, "took " .. took)
      local gc = tonumber(h.slurp(d .. "/gc"))
      assert.is_number(gc)
      local gone = false
      for _ = 1, 50 do
        if not alive(gc) then gone = true break end
        proc.run { "sleep", "0.05" }
      end
      assert.is_true(gone, "grandchild " .. gc .. " still alive")
    end)

    it("uses KILL when the group ignores TERM", function()
      local r = assert(proc.run({ "sh", "-c", "trap '' TERM; sleep 100" }, { timeout = 0.2 }))
      assert.is_true(r.timed_out)
      assert.are.equal(9, r.signal)
    end)

    it("caps captured output and says it did", function()
      local r = assert(proc.run({ "head", "-c", "100000", "/dev/zero" }, { max_output = 1000 }))
      assert.are.equal(1000, #r.stdout)
      assert.is_true(r.truncated)
      assert.are.equal(0, r.code)
      r = assert(proc.run({ "echo", "short" }, { max_output = 1000 }))
      assert.is_false(r.truncated)
    end)

    it("tees both streams to a file as they arrive, capturing too", function()
      local d = h.tmpdir()
      local tee = d .. "/phase.log"
      h.spit(tee, "before\n")
      local r = assert(proc.run({ "sh", "-c", "echo one; echo two >&2" }, { tee = tee }))
      assert.are.equal("one\n", r.stdout)
      assert.are.equal("two\n", r.stderr)
      local log = h.slurp(tee)
      assert.matches("^before\n", log)
      assert.matches("one\n", log, 1, true)
      assert.matches("two\n", log, 1, true)
    end)

    it("says when writing the tee file failed, and runs the child to the end", function()
      local r = assert(proc.run({ "echo", "hello" }, { tee = "/dev/full" }))
      assert.are.equal(0, r.code)
      assert.are.equal("hello\n", r.stdout)
      assert.are.equal("proc.run: tee: No space left on device", r.tee_error)
      assert.is_nil(assert(proc.run({ "true" }, { tee = "/dev/null" })).tee_error)
    end)

    it("names a tee file it cannot open", function()
      local r, msg, code = proc.run({ "true" }, { tee = "/nonexistent/dir/log" })
      assert.is_nil(r)
      assert.are.equal("proc.run: tee: /nonexistent/dir/log: No such file or directory", msg)
      assert.are.equal("ENOENT", code)
    end)

    it("echoes output to our stdout/stderr as it arrives", function()
      local script = [[
        local proc = require "relua.proc"
        local r = proc.run({"sh", "-c", "echo to-out; echo to-err >&2"}, {echo = true})
        io.write("captured:", r.stdout)
        local r2 = proc.run({"sh", "-c", "echo only-terminal"}, {echo = true, capture = false})
        io.write("not captured:[", r2.stdout, "]\n")
      ]]
      local r = h.relua { "-e", script }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("to-out\ncaptured:to-out\nonly-terminal\nnot captured:[]\n", r.stdout)
      assert.are.equal("to-err\n", r.stderr)
    end)

    it("lets the child write straight to our stdout with capture=false", function()
      local r = h.relua { "-e", [[local r = require("relua.proc").run({"echo","direct"}, {capture=false}) print(r.code, #r.stdout)]] }
      assert.are.equal("direct\n0\t0\n", r.stdout)
    end)

    it("does not wait for a grandchild that keeps the pipes open", function()
      local t0 = proc.clock()
      local r = assert(proc.run { "sh", "-c", "echo started; (sleep 3 >/dev/null 2>&1 &) ; sleep 3 & exit 0" })
      assert.are.equal(0, r.code)
      assert.are.equal("started\n", r.stdout)
      assert.is_true(proc.clock() - t0 < 2.5, "waited for the grandchild")
    end)

    it("stops reading a grandchild that floods the pipes past the timeout", function()
      local t0 = proc.clock()
      local r = assert(proc.run({ "sh", "-c", "yes & exit 0" }, { timeout = 0.5, max_output = 1000 }))
      assert.are.equal(0, r.code)
      assert.is_true(r.timed_out)
      assert.is_true(r.truncated)
      assert.are.equal(1000, #r.stdout)
      assert.is_true(proc.clock() - t0 < 5)
    end)

    it("refuses bad arguments loudly", function()
      assert.has_error(function() proc.run("ls") end, "bad argument #1 to 'proc.run' (table expected, got string)")
      assert.has_error(function() proc.run({}) end, "proc.run: argv[1] must name a program")
      assert.has_error(function() proc.run({ "ls", {} }) end, "proc.run: argv[2] must be a string, got table")
      assert.has_error(function() proc.run({ "ls" }, { timout = 1 }) end, "proc.run: unknown option 'timout'")
      assert.has_error(function() proc.run({ "ls" }, { timeout = "1" }) end, "proc.run: option 'timeout' must be a number, got string")
      assert.has_error(function() proc.run({ "ls" }, { env = { ["A=B"] = "x" } }) end)
    end)
  end)

  describe("sh", function()
    it("runs a command line with /bin/sh", function()
      local r = assert(proc.sh("echo $((2 + 3)) | sed s/5/five/"))
      assert.are.equal("five\n", r.stdout)
      r = assert(proc.sh("exit 4"))
      assert.are.equal(4, r.code)
    end)

    it("takes the same options", function()
      local d = h.tmpdir()
      local r = assert(proc.sh("pwd; echo $X; cat", { cwd = d, env = { X = "y" }, stdin = "in" }))
      assert.are.equal(d .. "\ny\nin", r.stdout)
    end)

    it("quotes for the shell", function()
      local tricky = "it's $(rm -rf /) `x` \"q\""
      local r = assert(proc.sh("printf %s " .. proc.quote(tricky)))
      assert.are.equal(tricky, r.stdout)
      assert.are.equal("plain-word", proc.quote("plain-word"))
    end)
  end)

  describe("spawn", function()
    it("returns a handle with pid, wait and close", function()
      local p = assert(proc.spawn { "sh", "-c", "echo $$" })
      assert.are.equal("userdata", type(p))
      assert.matches("^relua.proc.Process %(pid %d+%)$", tostring(p))
      local pid = p:pid()
      local r = p:wait()
      assert.are.equal(0, r.code)
      assert.are.equal(pid .. "\n", r.stdout)
      assert.are.same(r, p:wait())  -- waiting again gives the same result
      p:close()
      p:close()  -- twice is fine
      assert.has_error(function() p:pid() end, "proc: the process handle is closed")
    end)

    it("runs several processes in parallel", function()
      local t0 = proc.clock()
      local ps = {}
      for i = 1, 4 do ps[i] = assert(proc.spawn { "sh", "-c", "sleep 0.4; echo " .. i }) end
      for i = 1, 4 do
        local r = ps[i]:wait()
        assert.are.equal(i .. "\n", r.stdout)
        ps[i]:close()
      end
      local took = proc.clock() - t0
      assert.is_true(took < 1.4, "took " .. took .. " s: not parallel")
    end)

    it("keeps the other children's output and input flowing while waiting on one", function()
      local slow = assert(proc.spawn { "sleep", "1" })
      local chatty = assert(proc.spawn { "head", "-c", "3000000", "/dev/zero" })
      local reader = assert(proc.spawn({ "cat" }, { stdin = string.rep("i", 2000000) }))
      assert.are.equal(0, slow:wait().code)
      -- Both had more than a pipe holds to move: they only finished if wait() moved it.
      assert.is_false(chatty:running())
      assert.is_false(reader:running())
      assert.are.equal(3000000, #chatty:wait().stdout)
      assert.are.equal(2000000, #reader:wait().stdout)
      slow:close() chatty:close() reader:close()
    end)

    it("kills the whole group by signal name or number", function()
      local p = assert(proc.spawn { "sleep", "100" })
      assert.is_true(p:running())
      assert.is_true(p:kill())
      local r = p:wait()
      assert.are.equal(15, r.signal)
      assert.is_false(p:running())
      local _, msg, code = p:kill("KILL")
      assert.are.equal("ESRCH", code)
      assert.matches("has already exited", msg)
      p:close()
      p = assert(proc.spawn { "sleep", "100" })
      p:kill("SIGKILL")
      assert.are.equal(9, p:wait().signal)
      p:close()
      p = assert(proc.spawn { "sleep", "100" })
      p:kill(9)
      assert.are.equal(9, p:wait().signal)
      assert.has_error(function() p:kill("NOPE") end)
      p:close()
    end)

    it("applies a wait timeout, or the spawn one", function()
      local p = assert(proc.spawn({ "sleep", "100" }, { timeout = 0.2 }))
      local r = p:wait()
      assert.is_true(r.timed_out)
      p:close()
      p = assert(proc.spawn { "sleep", "100" })
      r = p:wait(0.2)
      assert.is_true(r.timed_out)
      p:close()
    end)

    it("kills and reaps a running child on close, <close> and garbage collection", function()
      local p = assert(proc.spawn { "sleep", "100" })
      local pid = p:pid()
      p:close()
      assert.is_false(alive(pid))
      do
        local q <close> = assert(proc.spawn { "sleep", "100" })
        pid = q:pid()
      end
      assert.is_false(alive(pid))
      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = assert(proc.spawn { "sleep", "100" })
      pid = weak[1]:pid()
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      assert.is_false(alive(pid))
    end)

    it("returns nil, message for a missing program", function()
      local p, msg, code = proc.spawn { "relua-no-such-program" }
      assert.is_nil(p)
      assert.are.equal("proc.spawn: not found: relua-no-such-program", msg)
      assert.are.equal("ENOENT", code)
    end)
  end)

  describe("Ctrl-C", function()
    it("kills the child's group and raises the interrupted error (exit 130)", function()
      local d = h.tmpdir()
      local script = string.format([[
        local proc = require "relua.proc"
        proc.run({"sh", "-c", "sleep 100 & echo $! > %s/gc; sleep 100"})
        print("not reached")
      ]], d)
      -- Start relua, send it SIGINT once the grandchild is up, and see what it did.
      local p = assert(proc.spawn({ h.bin, "-e", script }, { env = { RELUA_LIB = "lib" } }))
      for _ = 1, 200 do
        if fs.exists(d .. "/gc") and #h.slurp(d .. "/gc") > 0 then break end
        proc.run { "sleep", "0.02" }
      end
      local t0 = proc.clock()
      p:kill("INT")
      local r = p:wait(10)
      p:close()
      assert.is_false(r.timed_out)
      assert.is_true(proc.clock() - t0 < 5)
      assert.are.equal(130, r.code)
      assert.matches("interrupted", r.stderr)
      assert.are.equal("", r.stdout)
      local gc = tonumber(h.slurp(d .. "/gc"))
      local gone = false
      for _ = 1, 50 do
        if not alive(gc) then gone = true break end
        proc.run { "sleep", "0.05" }
      end
      assert.is_true(gone, "grandchild still alive after Ctrl-C")
    end)
  end)

  describe("descriptors", function()
    it("leaks none, on success or failure", function()
      local function count()
        collectgarbage() collectgarbage()
        return #assert(fs.list("/proc/self/fd"))
      end
      local d = h.tmpdir()
      local before = count()
      for _ = 1, 8 do
        proc.run { "relua-no-such-program" }
        proc.run({ "true" }, { cwd = d .. "/missing" })
        proc.run({ "true" }, { tee = d .. "/missing/log" })
        proc.run({ "sh", "-c", "echo x; echo y >&2" }, { tee = d .. "/log", stdin = "in" })
        proc.run({ "sleep", "5" }, { timeout = 0.01 })
        local p = assert(proc.spawn({ "cat" }, { stdin = "abc" }))
        p:close()
        assert(proc.spawn { "true" })  -- dropped unclosed: collected
      end
      assert.are.equal(before, count())
    end)

    it("gives the child only stdin, stdout and stderr", function()
      local other = assert(proc.spawn({ "sleep", "5" }, { stdin = "x" }))  -- holds three pipes
      local lock = assert(fs.lock(h.tmpdir() .. "/l"))
      local f = assert(io.open(h.tmpdir() .. "/io-file", "w"))        -- not close-on-exec
      local p = assert(proc.spawn({ "sleep", "5" }, { tee = h.tmpdir() .. "/log" }))
      -- sleep may hold a file open for a moment while it starts (its locale): a leaked
      -- descriptor stays, so look until the list settles
      local got
      for _ = 1, 100 do
        got = assert(fs.list("/proc/" .. p:pid() .. "/fd"))
        if #got == 3 then break end
        proc.sleep(0.02)
      end
      p:close() other:close() lock:close() f:close()
      assert.are.same({ "0", "1", "2" }, got)
    end)
  end)

  describe("clock and pid", function()
    it("gives monotonic seconds and our pid", function()
      local a = proc.clock()
      proc.run { "sleep", "0.05" }
      local b = proc.clock()
      assert.is_true(b - a >= 0.05 and b - a < 5)
      assert.are.equal("float", math.type(a))
      local r = proc.sh("echo $PPID")
      assert.are.equal(proc.pid() .. "\n", r.stdout)
    end)
  end)

  describe("sleep", function()
    it("waits without spawning anything", function()
      local t0 = proc.clock()
      proc.sleep(0.2)
      local took = proc.clock() - t0
      assert.is_true(took >= 0.2, "slept only " .. took)
      assert.has_error(function() proc.sleep("soon") end)
    end)

    it("ends on Ctrl-C with the interrupted error (exit 130)", function()
      local p = assert(proc.spawn({ h.bin, "-e", 'io.stdout:write("sleeping\\n") io.stdout:flush() require("relua.proc").sleep(100) print("not reached")' }))
      for _ = 1, 200 do
        local f = io.open("/proc/" .. p:pid() .. "/status")
        local state = f and f:read("a"):match("State:%s+(%a)")
        if f then f:close() end
        if state == "S" then break end
        proc.sleep(0.02)
      end
      proc.sleep(0.1)
      p:kill("INT")
      local r = p:wait(10)
      p:close()
      assert.is_false(r.timed_out)
      assert.are.equal(130, r.code)
      assert.matches("interrupted", r.stderr)
      assert.is_nil(r.stdout:find("not reached", 1, true))
    end)
  end)
end)
