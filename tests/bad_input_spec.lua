-- The bad-input catalogue (issue 9): bad recipes, tickets, flags, state files, logs, YAML,
-- JSON and environment, one table. Each row asserts the exit code, that the message names
-- the thing and says what to do, and that nothing was lost: every file in the sandbox is
-- exactly as it was (the ledger included), and no new file appeared.
local S = require "support.release"
local h = require "support.h"

local GOOD = [[
return { name = "good", phases = {
  { name = "prepare", run = function(r) r.state.A = 1 end, revert = function() end },
  { name = "deploy", run = function(r) r.state.B = 2 end },
} }
]]

-- A state file of ticket T, written by relua itself (the good recipe run once).
local function recorded(s)
  assert.are.equal(0, s:relua({ "good.lua", "T" }).code)
end

local function state_with(text)
  return function(s) s:write(".relua/releases/T.json", text) end
end

local VALID_STATE = '{"schema": 1, "ticket": "T", "recipe": {"path": "/x"}, "phases": [{"name": "prepare", "status": "done"}], "state": {}, "steps": {}}'
local function bad_state(fragment)
  return state_with((VALID_STATE:gsub('"state": {}', '"state": ' .. fragment)))
end

local function recipe(src) return function(s) s:write("r.lua", src) end end
local function script(src) return function(s) s:write("s.lua", src) end end

-- {name, setup(s), args, code, {patterns...}, env, may_write, trace_ok}
-- may_write: the run may create files (a failed phase records itself); trace_ok: a script's
-- uncaught error, whose traceback is what a script author wants.
local CASES = {
  -- recipes
  { "a recipe with a syntax error", recipe("return { phases = {"), { "r.lua", "T" }, 2,
    { "invalid recipe r%.lua", "r%.lua:1:", "a recipe returns" } },
  { "a recipe with a syntax error, through run", recipe("return { phases = = 1 }"), { "run", "r.lua", "T" }, 2,
    { "invalid recipe r%.lua", "unexpected symbol" } },
  { "a recipe that raises while loading", recipe('error("no config")'), { "run", "r.lua", "T" }, 2,
    { "invalid recipe r%.lua: it raised an error while loading: .*no config" } },
  { "an empty recipe", recipe(""), { "r.lua", "T" }, 2, { "r%.lua was run with the ticket T but is empty", "a recipe returns" } },
  { "phases defined, not returned", recipe('local x = { phases = {} }'), { "r.lua", "T" }, 2,
    { "returned nothing: it defines phases without returning them" } },
  { "a recipe returning a string", recipe('return "phases"'), { "r.lua", "T" }, 2, { "returned a string, not a recipe" } },
  { "a misspelt phases key", recipe('return { phase = {} }'), { "r.lua", "T" }, 2,
    { "unknown key phase %(did you mean phases%?%)" } },
  { "phases that is not a table", recipe('return { phases = 3 }'), { "r.lua", "T" }, 2, { "phases is a number, not a list" } },
  { "no phases at all", recipe('return { phases = {} }'), { "r.lua", "T" }, 2, { "phases is empty" } },
  { "phases with a key", recipe('return { phases = { x = {} } }'), { "r.lua", "T" }, 2, { "phases must be a list %(found the key x%)" } },
  { "a phase that is not a table", recipe('return { phases = { "prepare" } }'), { "r.lua", "T" }, 2, { "phase 1 is a string, not a table" } },
  { "a phase without a name", recipe('return { phases = { { run = print } } }'), { "r.lua", "T" }, 2, { "phase 1 has no name" } },
  { "a phase with a bad name", recipe('return { phases = { { name = "a b", run = print } } }'), { "r.lua", "T" }, 2,
    { 'phase 1 has an invalid name "a b" %(use 1%-64 characters' } },
  { "two phases of one name", recipe('return { phases = { { name = "a", run = print }, { name = "a", run = print } } }'),
    { "r.lua", "T" }, 2, { "phase a appears twice %(phases 1 and 2%)" } },
  { "a phase without run", recipe('return { phases = { { name = "a" } } }'), { "r.lua", "T" }, 2, { "phase a has no run function" } },
  { "a revert that is not a function", recipe('return { phases = { { name = "a", run = print, revert = "undo" } } }'),
    { "r.lua", "T" }, 2, { "phase a: revert must be a function" } },
  { "a misspelt phase key", recipe('return { phases = { { name = "a", run = print, revet = print } } }'), { "r.lua", "T" }, 2,
    { "phase a: unknown key revet %(did you mean revert%?%)" } },
  { "a misspelt recipe key", recipe('return { nme = "x", phases = { { name = "a", run = print } } }'), { "r.lua", "T" }, 2,
    { "unknown key nme %(did you mean name%?%)" } },
  { "a missing recipe", nil, { "run", "nope.lua", "T" }, 2, { "nope%.lua", "No such file" } },
  { "a recipe that is a folder", function(s) s:write("dir/x", "") end, { "run", "dir", "T" }, 2, { "dir" } },
  -- tickets
  { "a ticket with ..", recipe(GOOD), { "r.lua", "../x" }, 2, { 'invalid ticket "%.%./x"', "1%-64 characters" } },
  { "the ticket .", recipe(GOOD), { "r.lua", "." }, 2, { 'invalid ticket "%."' } },
  { "a ticket too long", recipe(GOOD), { "r.lua", string.rep("x", 65) }, 2, { "invalid ticket", "1%-64 characters" } },
  { "a ticket with a space", recipe(GOOD), { "run", "r.lua", "a b" }, 2, { 'invalid ticket "a b"' } },
  { "an empty ticket", recipe(GOOD), { "run", "r.lua", "" }, 2, { 'invalid ticket ""' } },
  { "no ticket", recipe(GOOD), { "run", "r.lua" }, 2, { "no ticket given", "usage: relua RECIPE TICKET" } },
  { "two tickets", recipe(GOOD), { "run", "r.lua", "T", "U" }, 2, { "unexpected argument U" } },
  { "status of an invalid ticket", nil, { "status", "../etc" }, 2, { 'invalid ticket "%.%./etc"' } },
  { "log of an invalid ticket", nil, { "log", "a/b" }, 2, { 'invalid ticket "a/b"' } },
  { "revert of an invalid ticket", nil, { "revert", "a b" }, 2, { 'invalid ticket "a b"' } },
  -- flags and commands
  { "--from an unknown phase", recipe(GOOD), { "r.lua", "T", "--from=nope" }, 2,
    { 'unknown phase "nope": the phases are prepare, deploy' } },
  { "--from without a value", recipe(GOOD), { "r.lua", "T", "--from" }, 2, { "%-%-from" } },
  { "an unknown run option", recipe(GOOD), { "r.lua", "T", "--force-it" }, 2, { "unknown option %-%-force%-it" } },
  { "an unknown status option", nil, { "status", "T", "--verbose" }, 2, { "unknown option %-%-verbose" } },
  { "status without a ticket", nil, { "status" }, 2, { "ticket" } },
  { "log without a ticket", nil, { "log" }, 2, { "ticket" } },
  { "revert without a ticket", nil, { "revert" }, 2, { "ticket" } },
  { "an unknown interpreter option", nil, { "--frobnicate" }, 2, { "%-%-frobnicate" } },
  { "help for an unknown command", nil, { "help", "deploy" }, 2, { "deploy" } },
  { "a missing script", nil, { "nope.lua" }, 2, { "cannot open nope%.lua", "relua help" } },
  { "version compare of a non-version", nil, { "version", "compare", "1.0.0", "banana" }, 2, { "'banana' is not a version", "usage: relua version compare" } },
  { "version bump of an unknown part", nil, { "version", "bump", "1.0.0", "huge" }, 2, { "huge" } },
  -- the other commands: diagnose, recover, playbook, check, init
  { "diagnose without a ticket", nil, { "diagnose" }, 2, { "no ticket given", "usage: relua diagnose TICKET" } },
  { "diagnose of an invalid ticket", nil, { "diagnose", "../x" }, 2, { 'invalid ticket "%.%./x"' } },
  { "diagnose of an unknown ticket", nil, { "diagnose", "NOPE" }, 2, { "no release recorded for ticket NOPE" } },
  { "recover without a ticket", nil, { "recover" }, 2, { "no ticket given", "usage: relua recover TICKET" } },
  { "recover of an unknown ticket", nil, { "recover", "NOPE", "--yes" }, 2, { "no release recorded for ticket NOPE" } },
  { "playbook without a subcommand", nil, { "playbook" }, 2, { "needs a subcommand", "relua playbook lint" } },
  { "playbook new without an id", nil, { "playbook", "new" }, 2, { "no playbook id given" } },
  { "an unknown playbook subcommand", nil, { "playbook", "bogus" }, 2, { "unknown command: relua playbook bogus" } },
  { "a playbook that is not YAML", function(s) s:write("playbooks/bad.yaml", "id: x\nsymptom: [\n") end,
    { "playbook", "lint", "playbooks/bad.yaml" }, 1, { "playbooks/bad%.yaml:3: bad YAML" } },
  { "a playbook with a misspelt field", function(s) s:write("playbooks/bad.yaml", "id: x\nsymtpom:\n  phase: a\n") end,
    { "playbook", "lint", "playbooks/bad.yaml" }, 1, { "unknown field symtpom %(known: id" } },
  { "check of a missing recipe", nil, { "check", "nope.lua" }, 2, { "cannot open recipe nope%.lua" } },
  { "check of a recipe with a misspelt key", recipe('return { phases = { { name = "a", run = print, revet = print } } }'),
    { "check", "r.lua" }, 2, { "unknown key revet %(did you mean revert%?%)" } },
  { "init with an unknown option", nil, { "init", "--bogus" }, 2, { "unknown option %-%-bogus", "usage: relua init" } },
  -- state files: refused with exit 2 and the path, never overwritten
  { "a state file of garbage", state_with("not json"), { "status", "T" }, 2,
    { "%.relua/releases/T%.json does not parse" } },
  { "an empty state file", state_with(""), { "good.lua", "T" }, 2, { "%.relua/releases/T%.json is empty" } },
  { "a truncated state file", state_with(VALID_STATE:sub(1, 40)), { "good.lua", "T" }, 2, { "T%.json does not parse" } },
  { "NaN in the state", bad_state("{\"x\": NaN}"), { "status", "T" }, 2, { "does not parse: .*NaN" } },
  { "a hex number in the state", bad_state("{\"x\": 0x1F}"), { "good.lua", "T" }, 2, { "does not parse: .*malformed number" } },
  { "1e400 in the state", bad_state("{\"x\": 1e400}"), { "status", "T" }, 2, { "too large for a double" } },
  { "invalid UTF-8 in the state", bad_state('{"x": "\255"}'), { "status", "T" }, 2, { "invalid UTF%-8" } },
  { "bytes after a NUL in the state", state_with(VALID_STATE .. "\0{}"), { "status", "T" }, 2, { "a NUL byte after the value" } },
  { "a duplicate key in the state", bad_state('{"x": 1, "x": 2}'), { "status", "T" }, 2, { 'a duplicate key "x"' } },
  { "a future schema", state_with((VALID_STATE:gsub('"schema": 1', '"schema": 2'))), { "good.lua", "T" }, 2,
    { "unknown schema version 2" } },
  { "a state of another ticket", state_with((VALID_STATE:gsub('"ticket": "T"', '"ticket": "U"'))), { "status", "T" }, 2,
    { "belongs to ticket U" } },
  { "an unknown phase status", state_with((VALID_STATE:gsub('"done"', '"finished"'))), { "status", "T" }, 2,
    { "unknown status" } },
  { "steps as an array", state_with((VALID_STATE:gsub('"steps": {}', '"steps": [1, 2]'))), { "status", "T" }, 2,
    { "T%.json", "steps" } },
  { "phases as an object", state_with((VALID_STATE:gsub('"phases": %b[]', '"phases": {"a": 1}'))), { "status", "T" }, 2,
    { "T%.json", "phases" } },
  { "a recorded state edited to a NaN, then a run", function(s)
      recorded(s)
      local p = s.rel .. "/T.json"
      h.spit(p, (h.slurp(p):gsub('"A": 1', '"A": NaN')))
    end, { "good.lua", "T" }, 2, { "T%.json does not parse: .*NaN" } },
  -- YAML and JSON read by a script: the failure names the file, line and column
  { "a YAML alias bomb", script([[
local lines = { 'a: &a ["x","x","x","x","x","x","x","x","x"]' }
local prev = "a"
for n in ("bcdefghi"):gmatch(".") do
  lines[#lines + 1] = n .. ": &" .. n .. " [" .. ("*" .. prev .. ","):rep(8) .. "*" .. prev .. "]"
  prev = n
end
assert(require("relua.yaml").decode(table.concat(lines, "\n"), "bomb.yaml"))
]]), { "s.lua" }, 1, { "yaml%.decode: bomb%.yaml:7:%d+: aliases expand to more than 1000000 nodes" } },
  { "a YAML cycle", script('assert(require("relua.yaml").decode("a: &a [*a]", "c.yaml"))'), { "s.lua" }, 1,
    { "c%.yaml:1:%d+: alias %*a is inside the node &a it names" } },
  { "a YAML duplicate key", script('assert(require("relua.yaml").decode("a: 1\\na: 2", "d.yaml"))'), { "s.lua" }, 1,
    { "d%.yaml:2:1: duplicate key 'a'" } },
  { "a YAML tab indentation", script('assert(require("relua.yaml").decode("a:\\n\\t- 1", "t.yaml"))'), { "s.lua" }, 1,
    { "t%.yaml:2:" } },
  { "YAML that is not UTF-8", script('assert(require("relua.yaml").decode("a: \\255", "u.yaml"))'), { "s.lua" }, 1,
    { "u%.yaml:" } },
  { "a missing YAML file", script('assert(require("relua.yaml").read("nope.yaml"))'), { "s.lua" }, 1,
    { "yaml%.read: nope%.yaml: No such file or directory" } },
  { "JSON with a trailing comma", script('assert(require("relua.json").decode("[1,]", "p.json"))'), { "s.lua" }, 1,
    { "json%.decode: p%.json: expected a value, found '%]' at line 1, column 4" } },
  { "JSON with a byte order mark", script('assert(require("relua.json").decode("\\239\\187\\191{}", "b.json"))'), { "s.lua" }, 1,
    { "json%.decode: b%.json: a byte order mark" } },
  { "r.state of bytes that are not UTF-8", recipe('return { phases = { { name = "a", run = function(r) r.state.BLOB = "\\255" end } } }'),
    { "r.lua", "U" }, 1, { "r%.lua:1: r%.state%.BLOB: .*not valid UTF%-8.*hex or base64" }, nil, true },
  -- environment
  { "RELUA_HOME that is a file", function(s) s:write("home", "x") end, { "status", "T" }, 2,
    { "home" }, { RELUA_HOME = "HOME_FILE" } },
  { "RELUA_LOG_LEVEL that is not a level", script('require("relua.log").info("x")'), { "s.lua" }, 2,
    { "RELUA_LOG_LEVEL=loud is not a level", "debug, info, warn or error" }, { RELUA_LOG_LEVEL = "loud" } },
  { "RELUA_GIT_TIMEOUT that is not a number", script('require("relua.git").ls_remote("http://127.0.0.1:9/x.git")'),
    { "s.lua" }, 2, { "RELUA_GIT_TIMEOUT=soon is not a number of seconds", "default 60" }, { RELUA_GIT_TIMEOUT = "soon" } },
}

-- Every file under dir: relative path -> content.
local function snapshot(dir)
  local files = {}
  local p = io.popen("cd " .. h.quote(dir) .. " && find . -type f | sort")
  for path in p:lines() do files[path] = h.slurp(dir .. "/" .. path:sub(3)) end
  p:close()
  return files
end

describe("bad input", function()
  after_each(S.cleanup)

  it("has at least 60 cases in the catalogue", function()
    assert.is_true(#CASES >= 60, #CASES .. " cases")
  end)

  for _, c in ipairs(CASES) do
    local name, setup, args, code, patterns, env, may_write = table.unpack(c, 1, 7)
    it(name .. ": exit " .. code .. ", named, nothing lost", function()
      local s = S.sandbox()
      s:write("good.lua", GOOD)
      if setup then setup(s) end
      local e = {}
      for k, v in pairs(env or {}) do e[k] = v == "HOME_FILE" and s:path("home") or v end
      local before = snapshot(s.dir)
      local r = s:relua(args, e)
      assert.are.equal(code, r.code, table.concat(args, " ") .. "\nstdout: " .. r.stdout .. "\nstderr: " .. r.stderr)
      if not (args[1] == "s.lua" and code == 1) then   -- a script's uncaught error keeps its traceback
        assert.is_nil(r.stderr:find("stack traceback", 1, true), "a traceback for bad input:\n" .. r.stderr)
      end
      for _, pat in ipairs(patterns) do assert.matches(pat, r.stderr .. r.stdout) end
      -- nothing lost: every file as it was (a lock file holds the last holder: not data)
      local after = snapshot(s.dir)
      for path, content in pairs(before) do
        if not path:match("%.lock$") then assert.are.equal(content, after[path], path .. " changed") end
      end
      if not may_write then   -- nothing half-written either: what appeared is empty (the
        -- ledger folder's own .gitignore aside)
        for path, content in pairs(after) do
          if before[path] == nil and not path:match("%.lock$") and not path:match("/%.gitignore$") then
            assert.are.equal("", content, path .. " appeared with content")
          end
        end
      end
    end)
  end
end)
