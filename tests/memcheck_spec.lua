-- The command-line scenarios that run once under valgrind memcheck (tests/run-all.sh sets
-- RELUA_BIN=tests/valgrind/relua for this file): each command path of a release (run,
-- fail, resume, status, log, list, revert, dry run), the refusals (corrupt state, invalid
-- recipe, bad ticket), a script error, git through libgit2, JSON and YAML. Under the plain
-- binary it is an ordinary (fast) spec; under valgrind an invalid access or a leak of
-- relua's makes relua exit 99, which fails the scenario.
local S = require "support.release"
local h = require "support.h"

local RECIPE = [[
local fs = require "relua.fs"
return { name = "mem", phases = {
  { name = "prepare", run = function(r)
      r.state.SHA = "abc"
      r:step("backup", function() return { file = "db.tar" } end)
      r:sh("echo prepared")
    end,
    revert = function(r) r:sh("echo reverted") end },
  { name = "deploy", run = function(r)
      if fs.exists("broken") then error({ code = "deploy", message = "deploy failed", hint = "fix it" }) end
      r.state.DONE = true
    end },
} }
]]

describe("memcheck scenarios", function()
  after_each(S.cleanup)

  it("a release: fail, status, log, list, resume, dry run, revert", function()
    local s = S.sandbox()
    s:write("release.lua", RECIPE)
    s:write("broken", "")
    local r = s:relua({ "release.lua", "1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("deploy failed", r.stderr)
    assert.are.equal(0, s:relua({ "status", "1" }).code)
    assert.are.equal(0, s:relua({ "status", "1", "--json" }).code)
    assert.are.equal(0, s:relua({ "log", "1" }).code)
    assert.are.equal(0, s:relua({ "list" }).code)
    os.remove(s:path("broken"))
    r = s:relua({ "release.lua", "1", "--dry-run" })
    assert.are.equal(0, r.code, r.stderr)
    r = s:relua({ "release.lua", "1" })
    assert.are.equal(0, r.code, r.stderr)
    r = s:relua({ "revert", "1" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("refusals: corrupt state, invalid recipe, bad ticket, unknown command option", function()
    local s = S.sandbox()
    s:write("release.lua", RECIPE)
    s:write(".relua/releases/2.json", '{"schema": 1, "ticket": "2", NaN}')
    assert.are.equal(2, s:relua({ "release.lua", "2" }).code)
    s:write("bad.lua", 'return { phases = { { name = "a", run = function() end, revet = 1 } } }')
    assert.are.equal(2, s:relua({ "bad.lua", "3" }).code)
    assert.are.equal(2, s:relua({ "release.lua", "../x" }).code)
    assert.are.equal(2, s:relua({ "status", "--bogus" }).code)
  end)

  it("a script error, help and version", function()
    local s = S.sandbox()
    s:write("boom.lua", 'local t = setmetatable({}, { __gc = function() end })\nerror("boom")\n')
    local r = s:relua({ "boom.lua" })
    assert.are.equal(1, r.code)
    assert.matches("boom", r.stderr)
    assert.are.equal(0, s:relua({ "help" }).code)
    assert.are.equal(0, s:relua({ "--version" }).code)
  end)

  it("git through libgit2: tag, push to a file remote, read back", function()
    local s = S.sandbox()
    h.sh("git init -q -b main work && git -C work -c user.name=a -c user.email=a@b commit -q --allow-empty -m one"
      .. " && git init -q --bare remote.git", { cwd = s.dir })
    s:write("g.lua", ([[
local git = require "relua.git"
local repo <close> = assert(git.open("work"))
assert(repo:tag("v1", "HEAD", { message = "one", tagger = { name = "a", email = "a@b" } }))
assert(repo:push("DIR/remote.git", { "v1" }))
local refs = assert(repo:ls_remote("DIR/remote.git"))
assert(#refs >= 1)
assert(repo:latest_tag("v*") == "v1")
for _ in repo:walk("HEAD") do end
]]):gsub("DIR", s.dir))
    local r = s:relua({ "g.lua" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("JSON and YAML, accepted and refused", function()
    local s = S.sandbox()
    s:write("d.lua", [[
local json, yaml = require "relua.json", require "relua.yaml"
assert(json.decode(json.encode({ a = { 1, 2.5, "é" }, b = json.null })))
assert(not json.decode('{"a": NaN}'))
assert(not json.decode('"\255"'))
assert(yaml.decode("a: &x [1, 2]\nb: *x\n"))
assert(not yaml.decode("a: &a [1, *a]"))
assert(yaml.encode({ list = { 1, "two" } }))
]])
    local r = s:relua({ "d.lua" })
    assert.are.equal(0, r.code, r.stderr)
  end)
end)
