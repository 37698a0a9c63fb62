-- The REPL as a person uses it: on a pseudo-terminal (keys in, screen out), on a pipe, and
-- its parts (completion, compiling typed chunks, the value printer relua.pretty).
local h = require "support.h"
local pty = require "support.pty"
local repl = require "relua.repl"
local pretty = require "relua.pretty"
local json = require "relua.json"

local PROMPT = "\n> $"

local function session(steps, opts)
  opts = opts or {}
  opts.env = opts.env or {}
  if opts.env.RELUA_HISTORY == nil then opts.env.RELUA_HISTORY = "" end
  opts.env.HOME = opts.env.HOME or h.tmpdir()
  local res = pty.run(steps, opts)
  assert.is_true(res.ok, pty.explain(res))
  -- Every session ends with Ctrl-D: exit 0 (under ASan, a leak at exit would change it).
  assert.are.equal(0, res.exit, pty.explain(res))
  return res
end

local function lines_of(path)
  local t = {}
  for line in h.slurp(path):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

describe("relua REPL on a terminal", function()
  after_each(h.cleanup)

  it("prints the values of expressions and =expr, nothing for statements, and exits 0 on Ctrl-D", function()
    local res = session({
      { expect = "relua \\d" }, { expect = PROMPT },
      { send = "1 + 1\r" }, { expect = "\n2" .. PROMPT },
      { send = "x = 20\r" }, { expect = "x = 20" .. PROMPT },
      { send = "=x * 2 + 2\r" }, { expect = "\n42" .. PROMPT },
      { send = "{ name = 'wiki', list = {1, 2}, [10] = true }\r" },
      { expect = '\n{ \\[10\\] = true, list = { 1, 2 }, name = "wiki" }' .. PROMPT },
      { send = "'text', nil, 3.0\r" }, { expect = '\n"text"\tnil\t3.0' .. PROMPT },
      { send = "\4" }, { wait_exit = true },
    })
    assert.are.equal(0, res.exit)
  end)

  it("reads multi-line chunks until they are complete", function()
    session({
      { expect = PROMPT },
      { send = "function twice(x)\r" }, { expect = "\n>> $" },
      { send = "  return x * 2\r" }, { expect = "\n>> $" },
      { send = "end\r" }, { expect = PROMPT },
      { send = "twice(\r" }, { expect = "\n>> $" },
      { send = "21)\r" }, { expect = "\n42" .. PROMPT },
      { send = "t = {\r" }, { expect = "\n>> $" }, { send = "a = 1 }\r" }, { expect = PROMPT },
      { send = "t.a\r" }, { expect = "\n1" .. PROMPT },
      { send = "\4" }, { wait_exit = true },
    })
  end)

  it("prints errors with a short traceback and keeps going", function()
    local res = session({
      { expect = PROMPT },
      { send = "error('boom')\r" }, { expect = "\nrepl:1: boom" .. PROMPT },
      { send = "local function inner() error('deep') end local function outer() inner() end outer()\r" },
      { expect = "\nrepl:1: deep\nstack traceback:\n\trepl:1: in upvalue 'inner'\n\trepl:1: in local 'outer'\n"
        .. "\trepl:1: in main chunk" .. PROMPT },
      { send = "1 +\r" }, { expect = "\n>> $" }, { send = "+\r" }, { expect = "unexpected symbol near '\\+'" .. PROMPT },
      { send = "require('relua.error').raise('ENOENT', 'no playbook matches', { hint = 'add one' })\r" },
      { expect = "\nerror: no playbook matches\nadd one" .. PROMPT },
      { send = "error({ code = 7 })\r" }, { expect = "\\(error object\\) { code = 7 }" .. PROMPT },
      { send = "'still here'\r" }, { expect = '"still here"' .. PROMPT },
      { send = "\4" }, { wait_exit = true },
    })
    assert.are.equal(0, res.exit)
    assert.is_nil(res.transcript:find("xpcall", 1, true))   -- the REPL's own frames are not shown
  end)

  it("completes globals, fields and methods with Tab", function()
    session({
      { expect = PROMPT },
      { send = "json.enc\t" }, { expect = "json\\.encode$" }, { send = "({1, 2})\r" }, { expect = '"\\[1,2\\]"' .. PROMPT },
      { send = "json.\t\t" }, { expect = "json\\.array +json\\.decode +json\\.encode +json\\.null" },
      { send = "\21" },  -- Ctrl-U: clear the line
      { send = "io.stdout:wr\t" }, { expect = "io\\.stdout:write$" }, { send = "('hi\\n')\r" }, { expect = "\nhi\n" },
      { send = "obj = setmetatable({}, { __index = { hello = function() return 'hi!' end } })\r" }, { expect = PROMPT },
      { send = "obj:he\t" }, { expect = "obj:hello$" }, { send = "()\r" }, { expect = '"hi!"' .. PROMPT },
      { send = "ya\t" }, { expect = "yaml$" }, { send = ".dec\t" }, { expect = "\\.decode$" },
      { send = "\21fs.re\t\t" }, { expect = "fs\\.read +fs\\.readlink +fs\\.remove *\n" },
      { send = "mo\t" }, { expect = "> fs\\.remove$" }, { send = "\21" },
      { send = "\21\4" }, { wait_exit = true },
    })
  end)

  it("completes the methods of a git repository object (repo:he<TAB>)", function()
    local dir = h.tmpdir()
    assert.are.equal(0, h.sh("git init -q " .. h.quote(dir)).code)
    session({
      { expect = PROMPT },
      { send = "repo = git.open('" .. dir .. "')\r" }, { expect = PROMPT },
      { send = "repo:he\t" }, { expect = "repo:head$" },
      { send = "\21repo:is_\t\t" }, { expect = "repo:is_ancestor +repo:is_bare" },
      { send = "\21repo:is_b\t" }, { expect = "repo:is_bare$" }, { send = "()\r" }, { expect = "\nfalse" .. PROMPT },
      { send = "\4" }, { wait_exit = true },
    })
  end)

  it("keeps history across sessions, in $RELUA_HISTORY", function()
    local hist = h.tmpdir() .. "/history"
    session({ { expect = PROMPT }, { send = "=6 * 7\r" }, { expect = "\n42" .. PROMPT },
      { send = "\4" }, { wait_exit = true } }, { env = { RELUA_HISTORY = hist } })
    assert.are.same({ "=6 * 7" }, lines_of(hist))
    session({ { expect = PROMPT }, { send = "\16" }, { expect = "=6 \\* 7$" }, { send = "\r" }, { expect = "\n42" .. PROMPT },
      { send = "\4" }, { wait_exit = true } }, { env = { RELUA_HISTORY = hist } })
    assert.are.same({ "=6 * 7" }, lines_of(hist))  -- the same line again is not repeated
  end)

  it("says once that history cannot be saved, and keeps working", function()
    local hist = h.tmpdir() .. "/no/such/folder/history"
    local res = session({ { expect = PROMPT }, { send = "1\r" }, { expect = "\n1" .. PROMPT },
      { send = "2\r" }, { expect = "\n2" .. PROMPT }, { send = "\4" }, { wait_exit = true } },
      { env = { RELUA_HISTORY = hist } })
    local _, count = res.transcript:gsub("relua: history not saved: " .. hist:gsub("%p", "%%%0")
      .. ": No such file or directory %(set RELUA_HISTORY to another file, or to nothing to turn history off%)", "")
    assert.are.equal(1, count, res.transcript)
  end)

  it("uses ~/.relua_history by default and keeps its last 1000 lines", function()
    local home = h.tmpdir()
    local old = {}
    for i = 1, 1500 do old[i] = "=" .. i end
    h.spit(home .. "/.relua_history", table.concat(old, "\n") .. "\n")
    session({ { expect = PROMPT }, { send = "\16" }, { expect = "=1500$" }, { send = "\21" },
      { send = "'new line'\r" }, { expect = PROMPT }, { send = "\4" }, { wait_exit = true } },
      { env = { RELUA_HISTORY = false, HOME = home } })
    local lines = lines_of(home .. "/.relua_history")
    assert.are.equal(1000, #lines)
    assert.are.equal("=502", lines[1])
    assert.are.equal("'new line'", lines[1000])
  end)

  it("cancels the line on Ctrl-C at the prompt, and a pending chunk too", function()
    session({
      { expect = PROMPT },
      { send = "this is not lua" }, { expect = "not lua$" }, { send = "\3" }, { expect = PROMPT },
      { send = "2 + 3\r" }, { expect = "\n5" .. PROMPT },
      { send = "for i = 1, 3 do\r" }, { expect = "\n>> $" }, { send = "\3" }, { expect = PROMPT },
      { send = "'fresh'\r" }, { expect = '\n"fresh"' .. PROMPT },
      { send = "\4" }, { wait_exit = true },
    })
  end)

  it("interrupts a running evaluation on Ctrl-C and returns to the prompt", function()
    local res = session({
      { expect = PROMPT },
      { send = "print('spinning') while true do end\r" }, { expect = "\nspinning\n" },
      { sleep = 0.2 }, { send = "\3" }, { expect = "interrupted" .. PROMPT },
      { send = "print('again') local n = 0 while true do n = n + 1 end\r" }, { expect = "\nagain\n" },
      { sleep = 0.2 }, { send = "\3" }, { expect = "interrupted" .. PROMPT },
      { send = "r = proc.run({ 'sleep', '30' }) print('not reached')\r" }, { sleep = 0.5 },
      { send = "\3" }, { expect = "interrupted" .. PROMPT, timeout = 5 },
      { send = "'alive'\r" }, { expect = '\n"alive"' .. PROMPT },
      { send = "\4" }, { wait_exit = true },
    })
    assert.are.equal(0, res.exit)
    assert.is_nil(res.transcript:find("\nnot reached", 1, true))
  end)

  it("opens with `relua repl` and `relua -i`, with the host modules bound as globals", function()
    for _, args in ipairs({ { "repl" }, { "-i" } }) do
      session({
        { expect = PROMPT },
        { send = "type(json), type(yaml), yaml.encode({ a = 1 })\r" },
        { expect = '\n"table"\t"table"\t"a: 1\\\\n"' .. PROMPT },
        { send = "type(fs), type(proc), type(http), type(git), type(ticket), fs.basename('/a/b.yaml')\r" },
        { expect = '\n"table"\t"table"\t"table"\t"table"\t"function"\t"b.yaml"' .. PROMPT },
        { send = "\4" }, { wait_exit = true },
      }, { args = args })
    end
  end)
end)

describe("relua REPL on a pipe", function()
  after_each(h.cleanup)

  it("reads line by line without prompts, printing values and errors", function()
    for _, args in ipairs({ { "-i" }, { "repl" } }) do
      local r = h.relua(args, { stdin = "1 + 1\nx = 5\n=x * 2\nfunction g()\n  return 7\nend\n=g()\n"
        .. "error('bad')\n{ 1, a = { b = true } }\nyaml.decode('k: [1, 2]')\n" })
      assert.are.equal(0, r.code)
      assert.are.equal('2\n10\n7\n{ 1, a = { b = true } }\n{ k = { 1, 2 } }\n', r.stdout)
      assert.are.equal("repl:1: bad\n", r.stderr)
    end
  end)

  it("reports a chunk left incomplete at the end of input", function()
    local r = h.relua({ "-i" }, { stdin = "=1\nfunction f()\n  return 1\n" })
    assert.are.equal(0, r.code)
    assert.are.equal("1\n", r.stdout)
    assert.are.equal("repl:2: 'end' expected (to close 'function' at line 1) near <eof>\n", r.stderr)
  end)

  it("runs -e chunks before the REPL", function()
    local r = h.relua({ "-e", "answer = 42", "-i" }, { stdin = "answer\n" })
    assert.are.equal("42\n", r.stdout)
  end)
end)

describe("relua.repl.complete", function()
  it("completes globals and keywords", function()
    local env = { print = print, pairs = pairs, prefix = 1 }
    assert.are.same({ "pairs", "prefix", "print" }, repl.complete("p", env))
    assert.are.same({ "repeat", "return" }, repl.complete("re", env))
  end)

  it("completes fields of nested tables and methods through __index tables", function()
    local Repo = { head = function() end, heads = function() end, name = "not a method" }
    local base = { describe = function() end }
    setmetatable(Repo, { __index = base })
    local env = { fs = { read = 1, remove = 2, write = 3, sub = { deep = true } },
      repo = setmetatable({ path = "/x" }, { __index = Repo }) }
    assert.are.same({ "fs.read", "fs.remove" }, repl.complete("fs.re", env))
    assert.are.same({ "fs.sub.deep" }, repl.complete("fs.sub.", env))
    assert.are.same({ "repo:head", "repo:heads" }, repl.complete("repo:he", env))
    assert.are.same({ "repo:describe", "repo:head", "repo:heads" }, repl.complete("repo:", env))
    assert.are.same({ "repo.describe", "repo.head", "repo.heads", "repo.name", "repo.path" },
      repl.complete("repo.", env))
  end)

  it("completes methods of userdata and strings through their metatables", function()
    local env = { f = io.stdout, s = "text" }
    assert.are.same({ "f:seek", "f:setvbuf" }, repl.complete("f:se", env))
    assert.are.same({ "s:upper" }, repl.complete("s:up", env))
  end)

  it("never calls __index functions, and finds nothing for unknown paths", function()
    local called = false
    local env = { lazy = setmetatable({}, { __index = function() called = true; error("side effect") end }) }
    assert.are.same({}, repl.complete("lazy.x", env))
    assert.are.same({}, repl.complete("nope.x", env))
    assert.are.same({}, repl.complete("a..b", env))
    assert.is_false(called)
  end)
end)

describe("relua.repl.compile", function()
  it("returns values of expressions and =expr, runs statements", function()
    local env = {}
    assert.are.equal(3, repl.compile("1 + 2", env)())
    assert.are.equal(4, repl.compile("=2 * 2", env)())
    assert.is_nil(repl.compile("x = 5", env)())
    assert.are.equal(5, env.x)
  end)

  it("tells an incomplete chunk from a wrong one", function()
    local fn, err, incomplete = repl.compile("function f()")
    assert.is_nil(fn)
    assert.is_true(incomplete)
    assert.matches("<eof>$", err)
    fn, err, incomplete = repl.compile("x y")
    assert.is_nil(fn)
    assert.is_false(incomplete)
    assert.matches("^repl:1: syntax error near 'y'", err)
  end)
end)

describe("relua.pretty", function()
  it("writes scalars the way they are typed", function()
    assert.are.equal('"a\\nb\\"c\\0"', pretty.format('a\nb"c\0'))
    assert.are.equal("42", pretty.format(42))
    assert.are.equal("3.0", pretty.format(3.0))
    assert.are.equal("nil", pretty.format(nil))
    assert.are.equal("true", pretty.format(true))
    assert.are.equal("null", pretty.format(json.null))
    assert.are.equal("nan", pretty.format(0 / 0))
    assert.matches("^function: 0x%x+$", pretty.format(print))
  end)

  it("puts the array part first, then sorted keys, on one line when it fits", function()
    assert.are.equal('{ 1, 2, 3, a = 1, b = "x", ["with space"] = true }',
      pretty.format({ 1, 2, 3, b = "x", a = 1, ["with space"] = true }))
    assert.are.equal('{ 1, 2, [10] = 0, a = 1, ["end"] = 2, [true] = 3 }',
      pretty.format({ 1, 2, a = 1, [10] = 0, ["end"] = 2, [true] = 3 }))
    assert.are.equal("{}", pretty.format({}))
  end)

  it("breaks a table over lines when it is wider than the width", function()
    local t = { alpha = string.rep("a", 30), beta = string.rep("b", 30), gamma = { 1, 2 } }
    assert.are.equal('{\n  alpha = "' .. string.rep("a", 30) .. '",\n  beta = "' .. string.rep("b", 30)
      .. '",\n  gamma = { 1, 2 }\n}', pretty.format(t))
    assert.are.equal("{ 1, 2 }", pretty.format({ 1, 2 }, { width = 8 }))
    assert.are.equal("{\n  1,\n  2\n}", pretty.format({ 1, 2 }, { width = 7 }))
  end)

  it("cuts nesting at the depth limit", function()
    local t = { a = { b = { c = { d = { e = 1 } } } } }
    assert.are.equal("{ a = { b = { c = { d = {...} } } } }", pretty.format(t))
    assert.are.equal("{ a = {...} }", pretty.format(t, { depth = 1 }))
  end)

  it("marks cycles with the table's address, and prints shared tables again", function()
    local c = { name = "c" }
    c.self = c
    c.list = { c }
    local addr = tostring(c):gsub("%p", "%%%0")
    assert.matches('^{ list = { <cycle: ' .. addr .. '> }, name = "c", self = <cycle: ' .. addr .. '> }$',
      pretty.format(c, { width = 200 }))
    local shared = { 1 }
    assert.are.equal("{ a = { 1 }, b = { 1 } }", pretty.format({ a = shared, b = shared }))
  end)

  it("truncates long strings and long tables, saying how much is left", function()
    assert.are.equal('"' .. string.rep("x", 200) .. '"... (1000 bytes)', pretty.format(string.rep("x", 1000)))
    assert.are.equal('"ab"... (6 bytes)', pretty.format("abcdef", { max_string = 2 }))
    -- never in the middle of a UTF-8 character
    assert.are.equal('"é"... (6 bytes)', pretty.format("ééé", { max_string = 3 }))
    local t = {}
    for i = 1, 10 do t[i] = i end
    assert.are.equal("{ 1, 2, 3, ... (7 more) }", pretty.format(t, { max_items = 3 }))
  end)

  it("uses __tostring where a value defines it", function()
    local obj = setmetatable({ secret = 1 }, { __tostring = function() return "<Version 1.2.3>" end })
    assert.are.equal("{ v = <Version 1.2.3> }", pretty.format({ v = obj }))
  end)

  it("raises on a bad option, naming it", function()
    assert.has_error(function() pretty.format({}, { depth = "deep" }) end,
      "bad argument #2 to 'format' (field 'depth' must be an integer)")
  end)
end)
