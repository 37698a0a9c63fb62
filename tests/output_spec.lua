-- What a program reads (--json on every command that takes it: doc/json.md) and
-- what a person sees (colour on a terminal only), and -l NAME=MOD.
local h = require "support.h"
local json = require "relua.json"
local pty = require "support.pty"

local RECIPE = [[
return { phases = {
  { name = "build", run = function(r) r:sh("echo compiling") print("printed by the recipe") end },
  { name = "publish", run = function(r) if io.open("broken") then error("upload refused") end end,
    revert = function(r) print("unpublishing") end },
  { name = "tag", run = function() end },
} }
]]

local function sandbox(broken)
  local d = h.tmpdir()
  h.spit(d .. "/r.lua", RECIPE)
  if broken then h.spit(d .. "/broken", "") end
  return d, { RELUA_HOME = d .. "/home", GITHUB_ACTIONS = false, GITLAB_CI = false }
end

describe("--json", function()
  after_each(h.cleanup)

  it("every command that takes --json has its shape in doc/json.md", function()
    local doc = h.slurp(h.root .. "/doc/json.md")
    local sections = {}
    for heading in doc:gmatch("\n## ([^\n]+)") do sections[#sections + 1] = heading end
    local cli = require "relua.cli"
    local missing = {}
    for name, c in pairs(cli.commands) do
      for _, o in ipairs(c.options or {}) do
        if o[1]:match("^%-%-json") then
          local found = false
          for _, heading in ipairs(sections) do
            if heading:find("`relua " .. name .. " ", 1, true) then found = true end
          end
          if not found then missing[#missing + 1] = name end
        end
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
    -- the keys a program reads are the documented ones
    local d = h.tmpdir()
    local r = h.relua({ "controls", "--json" }, { cwd = d, env = { RELUA_HOME = d, RELUA_STORE = false } })
    assert.are.equal(0, r.code, r.stderr)
    local section = doc:match("\n## `relua controls %-%-json`(.-)\n## ")
    for key in pairs(assert(json.decode(r.stdout))) do
      assert.matches("%f[%w_]" .. key .. "%f[^%w_]", section)
    end
  end)

  it("a run prints its summary alone on stdout, the progress on stderr", function()
    local d, env = sandbox(true)
    local r = h.relua({ "r.lua", "1.0", "--json" }, { cwd = d, env = env })
    assert.are.equal(1, r.code)
    local s = assert(json.decode(r.stdout))
    assert.are.same({ phase = "publish", rc = 1, message = "r.lua:3: upload refused" }, s.failed)
    assert.are.equal("failed", s.status)
    assert.are.equal(1, s.exit)
    assert.are.equal("relua r.lua 1.0 --from=publish", s.resume)
    assert.are.equal("relua revert 1.0", s.revert)
    assert.are.same({ "build", "publish", "tag" }, { s.phases[1].name, s.phases[2].name, s.phases[3].name })
    assert.are.same({ "done", "failed", "pending" }, { s.phases[1].status, s.phases[2].status, s.phases[3].status })
    assert.are.same({ true, true, false }, { s.phases[1].ran, s.phases[2].ran, s.phases[3].ran })
    assert.is_number(s.phases[1].seconds)
    -- what the phase and its process printed went to stderr
    assert.matches("compiling\n", r.stderr, 1, true)
    assert.matches("printed by the recipe\n", r.stderr, 1, true)
    assert.matches("phase build: running", r.stderr, 1, true)

    os.remove(d .. "/broken")
    r = h.relua({ "r.lua", "1.0", "--json" }, { cwd = d, env = env })
    assert.are.equal(0, r.code, r.stderr)
    s = assert(json.decode(r.stdout))
    assert.are.equal("done", s.status)
    assert.are.equal("done earlier", s.phases[1].skipped)
    assert.is_false(s.nothing_to_do)
    r = h.relua({ "run", "r.lua", "1.0", "--json" }, { cwd = d, env = env })
    assert.is_true(assert(json.decode(r.stdout)).nothing_to_do)
  end)

  it("refuses --json with --dry-run", function()
    local d, env = sandbox()
    local r = h.relua({ "r.lua", "1.0", "--json", "--dry-run" }, { cwd = d, env = env })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
    assert.matches("--json and --dry-run do not go together", r.stderr, 1, true)
  end)

  it("status answers for a ticket never run; a bad name is still a usage error", function()
    local d, env = sandbox()
    local r = h.relua({ "status", "9.9", "--json" }, { cwd = d, env = env })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ ticket = "9.9", status = "none", phases = {} }, json.decode(r.stdout))
    assert.are.equal('{\n  "phases": [],\n  "status": "none",\n  "ticket": "9.9"\n}\n', r.stdout)
    r = h.relua({ "status", "../x", "--json" }, { cwd = d, env = env })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
    h.relua({ "r.lua", "1.0" }, { cwd = d, env = env })
    r = h.relua({ "status", "1.0", "--json" }, { cwd = d, env = env })
    assert.are.equal("done", json.decode(r.stdout).status)
  end)

  it("log prints one JSON object per event", function()
    local d, env = sandbox(true)
    h.relua({ "r.lua", "1.0" }, { cwd = d, env = env })
    local r = h.relua({ "log", "1.0", "--json" }, { cwd = d, env = env })
    assert.are.equal(0, r.code, r.stderr)
    local events = {}
    for line in r.stdout:gmatch("[^\n]+") do events[#events + 1] = assert(json.decode(line)) end
    assert.are.same({ "run", "start", "done", "start", "failed" },
      { events[1].event, events[2].event, events[3].event, events[4].event, events[5].event })
    assert.are.equal(1, events[5].rc)
    assert.are.equal(math.type(1), math.type(events[5].rc))
    assert.are.equal("publish", events[5].phase)
    assert.are.equal(#h.relua({ "log", "1.0" }, { cwd = d, env = env }).stdout:gsub("[^\n]", ""), #events)
  end)

  it("list prints a JSON array", function()
    local d, env = sandbox()
    local r = h.relua({ "list", "--json" }, { cwd = d, env = env })
    assert.are.equal("[]\n", r.stdout)
    h.relua({ "r.lua", "1.0" }, { cwd = d, env = env })
    local list = json.decode(h.relua({ "list", "--json" }, { cwd = d, env = env }).stdout)
    assert.are.equal(1, #list)
    assert.are.same({ "1.0", "done" }, { list[1].ticket, list[1].status })
  end)

  it("a revert prints its summary, in the order it reverted", function()
    local d, env = sandbox()
    h.relua({ "r.lua", "1.0" }, { cwd = d, env = env })
    local r = h.relua({ "revert", "1.0", "--json" }, { cwd = d, env = env })
    assert.are.equal(0, r.code, r.stderr)
    local s = assert(json.decode(r.stdout))
    assert.are.equal("revert", s.what)
    assert.are.equal("reverted", s.status)
    assert.are.same({ "tag", "publish", "build" }, { s.phases[1].name, s.phases[2].name, s.phases[3].name })
    assert.are.same({ "no revert", nil, "no revert" }, { s.phases[1].skipped, s.phases[2].skipped, s.phases[3].skipped })
    assert.are.equal("reverted", s.phases[2].status)
    assert.matches("unpublishing", r.stderr, 1, true)
    assert.is_true(s.phases[2].ran)
    assert.is_false(s.phases[1].ran)
  end)
end)

describe("colour", function()
  after_each(h.cleanup)

  it("marks a failed phase in red on a terminal, never with NO_COLOR or off a terminal", function()
    local d, env = sandbox(true)
    env.TERM = "xterm"
    local res = pty.run({ { expect = "relua: phase publish failed" }, { wait_exit = true } },
      { args = { "r.lua", "1.0" }, cwd = d, env = env })
    assert.is_true(res.ok, pty.explain(res))
    assert.matches("\27[1;31mrelua: phase publish failed: r.lua:3: upload refused\27[0m", res.raw, 1, true)
    env.NO_COLOR = "1"
    res = pty.run({ { expect = "relua: phase publish failed" }, { wait_exit = true } },
      { args = { "r.lua", "1.0" }, cwd = d, env = env })
    assert.is_true(res.ok, pty.explain(res))
    assert.is_nil(res.raw:find("\27[", 1, true))
    local r = h.relua({ "r.lua", "1.0" }, { cwd = d, env = { RELUA_HOME = env.RELUA_HOME, NO_COLOR = false, TERM = "xterm" } })
    assert.are.equal(1, r.code)
    assert.is_nil(r.stderr:find("\27", 1, true))
  end)
end)

describe("-l", function()
  it("binds NAME=MOD as lua 5.4.7, and a dotted module to its last part", function()
    local r = h.relua({ "-l", "j=relua.json", "-l", "relua.yaml", "-e", 'print(j.encode({1}), type(yaml.decode))' })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("[1]\tfunction\n", r.stdout)
    r = h.relua({ "-e", 'print(rawget(_G, "relua.json"))', "-l", "relua.json" })
    assert.are.equal("nil\n", r.stdout)
    r = h.relua({ "-l", "nope=no.such.module" })
    assert.are.equal(1, r.code)
    assert.matches("module 'no.such.module' not found", r.stderr, 1, true)
  end)
end)
