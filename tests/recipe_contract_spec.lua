-- A file run with a ticket is held to the recipe contract (issue 9, item 4): what does not
-- return a recipe, a typo in a key, a syntax error: exit 2, saying what a recipe returns.
local S = require "support.release"

local HINT = "a recipe returns { phases = "

describe("relua FILE TICKET with a file that is not a recipe", function()
  after_each(S.cleanup)

  local function run(src, args)
    local s = S.sandbox()
    s:write("recipe.lua", src)
    local r = s:relua(args or { "recipe.lua", "1234" })
    return r, s
  end

  local function refused(r, s, pattern)
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches(pattern, r.stderr)
    assert.matches(HINT, r.stderr, 1, true)
    assert.is_false(s:exists(".relua/releases/1234.json"))  -- nothing started
  end

  it("refuses an empty file", function()
    local r, s = run("-- nothing yet\n")
    refused(r, s, "recipe%.lua was run with the ticket 1234 but is empty")
  end)

  it("refuses a file that defines phases but returns nothing", function()
    local r, s = run('local recipe = { phases = { { name = "a", run = function() end } } }\n')
    refused(r, s, "recipe%.lua was run with the ticket 1234 but returned nothing: it defines phases")
  end)

  it("refuses a misspelt phases key, naming it and the nearest known key", function()
    local r, s = run('return { phasse = { { name = "a", run = function() end } } }\n')
    refused(r, s, "invalid recipe recipe%.lua: unknown key phasse %(did you mean phases%?%)")
  end)

  it("refuses a table without phases and a value that is not a table", function()
    local r, s = run('return { name = "x" }\n')
    refused(r, s, "invalid recipe recipe%.lua: it has no phases")
    r, s = run('return 42\n')
    refused(r, s, "recipe%.lua was run with the ticket 1234 but returned a number, not a recipe")
  end)

  it("refuses an unknown key in a phase, naming the nearest known one", function()
    local r, s = run('return { phases = { { name = "a", run = function() end, revet = function() end } } }\n')
    refused(r, s, "invalid recipe recipe%.lua: phase a: unknown key revet %(did you mean revert%?%)")
    r, s = run('return { phases = { { name = "a", run = function() end, zzzzzzzz = 1 } } }\n')
    refused(r, s, "phase a: unknown key zzzzzzzz %(the known keys are description, followup, irreversible, name,")
  end)

  it("refuses an unknown recipe key the same way, and lets keys starting with _ through", function()
    local r, s = run('return { nmae = "x", phases = { { name = "a", run = function() end } } }\n')
    refused(r, s, "invalid recipe recipe%.lua: unknown key nmae %(did you mean name%?%)")
    r = run('return { _mine = 1, phases = { { name = "a", run = function() end, _note = "x" } } }\n')
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("refuses a recipe with a syntax error with exit 2, with run or without", function()
    local r, s = run('return { phases = { { name = "a", run = function() end } }\n')
    refused(r, s, "invalid recipe recipe%.lua: recipe%.lua:2: '}' expected")
    r, s = run('return { phases = = 1 }\n', { "run", "recipe.lua", "1234" })
    assert.are.equal(2, r.code)
    assert.matches("invalid recipe recipe%.lua: recipe%.lua:1: unexpected symbol", r.stderr)
  end)

  it("still runs a script that takes arguments and returns nothing", function()
    local r = run('print("args", ...)\n')
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("args\t1234\n", r.stdout)
    r = run('print("not a ticket", ...)\n', { "recipe.lua", "some/path" })
    assert.are.equal(0, r.code, r.stderr)
  end)
end)
