-- The binary as a user runs it: scripts, options, errors and their exit codes.
local h = require "support.h"

describe("relua command line", function()
  after_each(h.cleanup)

  it("runs a script with its arguments in arg and ...", function()
    local d = h.tmpdir()
    h.spit(d .. "/s.lua", 'print(arg[0], arg[1], select("#", ...), ...)')
    local r = h.relua({ d .. "/s.lua", "a", "b" })
    assert.are.equal(0, r.code)
    assert.are.equal(d .. "/s.lua\ta\t2\ta\tb\n", r.stdout)
  end)

  it("runs -e chunks in order and stops options at --", function()
    local r = h.relua({ "-e", "x = 1", "-e", "print(x + 1)" })
    assert.are.equal(0, r.code)
    assert.are.equal("2\n", r.stdout)
  end)

  it("reads the script from stdin when it is not a terminal", function()
    local r = h.relua({}, { stdin = 'print("from stdin")' })
    assert.are.equal("from stdin\n", r.stdout)
    r = h.relua({ "-", "x" }, { stdin = 'print(...)' })
    assert.are.equal("x\n", r.stdout)
  end)

  it("prints its version and the libraries'", function()
    local r = h.relua({ "--version" })
    assert.are.equal(0, r.code)
    assert.matches("^relua %d+%.%d+%.%d+ %(Lua 5%.4%.%d+, libgit2 %d+%.%d+%.%d+, libcurl %d+%.%d+%.%d+%)\n$", r.stdout)
    assert.are.equal(r.stdout, h.relua({ "-v" }).stdout)
  end)

  it("reports an uncaught error with file:line and a traceback, exit 1", function()
    local d = h.tmpdir()
    h.spit(d .. "/boom.lua", 'local x = 1\nerror("boom")\n')
    local r = h.relua({ d .. "/boom.lua" })
    assert.are.equal(1, r.code)
    assert.matches("^relua: " .. d:gsub("%p", "%%%0") .. "/boom%.lua:2: boom\nstack traceback:", r.stderr)
  end)

  it("reports a syntax error with file:line, exit 1", function()
    local d = h.tmpdir()
    h.spit(d .. "/bad.lua", 'x = = 1\n')
    local r = h.relua({ d .. "/bad.lua" })
    assert.are.equal(1, r.code)
    assert.matches("bad%.lua:1: unexpected symbol near '='", r.stderr)
  end)

  it("refuses a missing script with exit 2 and says what to do", function()
    local r = h.relua({ "/nonexistent/release.lua" })
    assert.are.equal(2, r.code)
    assert.matches("relua: cannot open /nonexistent/release.lua: No such file or directory", r.stderr)
    assert.matches("relua help", r.stderr)
  end)

  it("refuses an unknown option with exit 2 and the usage", function()
    local r = h.relua({ "--frobnicate" })
    assert.are.equal(2, r.code)
    assert.matches("unrecognized option '%-%-frobnicate'", r.stderr)
    assert.matches("usage: relua", r.stderr)
    r = h.relua({ "-e" })
    assert.are.equal(2, r.code)
    assert.matches("'%-e' needs an argument", r.stderr)
  end)

  it("shows structured errors without a traceback, with their hint and exit code", function()
    local r = h.relua({ "-e", 'require("relua.error").raise("immutable", "version 1.0 is burned", {hint = "bump it", exit = 4})' })
    assert.are.equal(4, r.code)
    assert.are.equal("relua: version 1.0 is burned\nbump it\n", r.stderr)
  end)

  it("shows warnings, an error in __gc among them", function()
    local r = h.relua({ "-e", 'setmetatable({}, {__gc = function() error("in gc") end}) collectgarbage()' },
      { env = { RELUA_WARNINGS_FATAL = false } })
    assert.are.equal(0, r.code)
    assert.matches("relua: warning: error in __gc", r.stderr)
    r = h.relua({ "-e", 'setmetatable({}, {__gc = function() error("in gc") end}) collectgarbage()' },
      { env = { RELUA_WARNINGS_FATAL = "1" } })
    assert.are.equal(1, r.code)
  end)

  it("stops a busy loop on Ctrl-C with a clean error and exit 130", function()
    local r = h.sh(h.quote(h.root .. "/" .. h.bin:gsub("^%./", "")) ..
      " -e 'while true do end' & pid=$!; sleep 0.3; kill -INT $pid; wait $pid")
    assert.are.equal(130, r.code)
    assert.are.equal("relua: interrupted\n", r.stderr)
  end)

  it("loads lib/ from RELUA_LIB instead of the binary when asked", function()
    local d = h.tmpdir()
    os.execute("mkdir -p " .. h.quote(d .. "/relua"))
    h.spit(d .. "/relua/version.lua", 'return { describe = function() return "from the tree" end }')
    local r = h.relua({ "-e", 'print(require("relua.version").describe())' }, { env = { RELUA_LIB = d } })
    assert.are.equal("from the tree\n", r.stdout)
    r = h.relua({ "-e", 'print(require("relua.version").describe())' })
    assert.matches("^relua %d", r.stdout)
  end)

  it("loads each lazy module's own object, whatever the order", function()
    local r = h.relua({ "-e", [[
      -- crypto first, then http and git: each must get its own shared object
      local fs = require "relua.fs"
      assert(fs.hash("abc", "sha256"):sub(1, 8) == "ba7816bf")
      assert(type(require("relua.http").request) == "function")
      assert(type(require("relua.git").open) == "function")
      print("ok")
    ]] })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("ok\n", r.stdout)
  end)

  it("loads libcurl only when relua.http is first required", function()
    local probe = [[
      local function loaded()
        for line in io.lines("/proc/self/maps") do
          if line:find("libcurl", 1, true) then return "yes" end
        end
        return "no"
      end
      io.write(loaded(), " ")
      local http = require "relua.http"
      io.write(loaded(), " ", type(http.request), " ")
      package.loaded["relua.http"], package.loaded["relua.core.http"] = nil, nil
      io.write(type(require("relua.http").request))
    ]]
    local r = h.relua({ "-e", probe })
    assert.are.equal(0, r.code, r.stderr)
    if h.links(h.bin, "libcurl") then
      assert.are.equal("yes yes function function", r.stdout)  -- `make LAZY=` links it directly
    else
      assert.are.equal("no yes function function", r.stdout)
    end
  end)

  it("lists its commands", function()
    local r = h.relua({ "help" })
    assert.are.equal(0, r.code)
    assert.matches("commands:", r.stdout)
  end)
end)
