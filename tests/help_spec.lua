-- Per-command help: `relua help COMMAND`, `relua COMMAND --help`, and the usage line a
-- missing argument prints. Every command registered in relua.cli is checked, so a command
-- added without its help fails here.
local h = require "support.h"
local cli = require "relua.cli"
local help = require "relua.cli.help"

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("relua help", function()
  after_each(h.cleanup)

  it("lists every command with its summary", function()
    local r = h.relua({ "help" })
    assert.are.equal(0, r.code, r.stderr)
    for name, c in pairs(cli.commands) do
      if not c.hidden then
        assert.matches("\n  " .. esc(name) .. " +" .. esc(c.summary:sub(1, 30)), r.stdout)
      end
    end
    assert.matches("relua help COMMAND", r.stdout)
  end)

  for name, c in pairs(cli.commands) do
    if not c.hidden then
      it("shows usage, options, exit codes and an example for " .. name, function()
        local words = {}
        for w in name:gmatch("%S+") do words[#words + 1] = w end
        local r = h.relua({ "help", table.unpack(words) })
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("", r.stderr)
        assert.matches("^usage: relua " .. esc(name), r.stdout)
        assert.matches("\nexit codes:\n  0  ", r.stdout)
        assert.matches("\nexamples?:\n  relua ", r.stdout)
        for _, o in ipairs(c.options) do
          assert.matches("\n  " .. esc(o[1]) .. " ", r.stdout)
        end
        -- Every option the usage line shows is explained.
        for _, u in ipairs(c.usage) do
          for opt in u:gmatch("%-%-[%w%-]+") do
            local found = false
            for _, o in ipairs(c.options) do
              if o[1]:match("^" .. esc(opt)) then found = true end
            end
            assert.is_true(found, name .. ": the usage shows " .. opt .. " but no option explains it")
          end
        end
        words[#words + 1] = "--help"
        local r2 = h.relua(words)
        assert.are.equal(0, r2.code, r2.stderr)
        assert.are.equal(r.stdout, r2.stdout)
      end)
    end
  end

  it("names every refusal of revert under exit 3: the lock, and past the point of no return", function()
    local r = h.relua({ "help", "revert" })
    assert.are.equal(0, r.code, r.stderr)
    local text = r.stdout:gsub("%s+", " ")
    assert.matches(" 3 refused: another run holds the ticket's lock, or every phase left is past the point of no return",
      text, 1, true)
  end)

  it("shows a command's help for -h too", function()
    local r = h.relua({ "status", "-h" })
    assert.are.equal(0, r.code)
    assert.are.equal(h.relua({ "help", "status" }).stdout, r.stdout)
  end)

  it("prints the usage line when an argument is missing, exit 2", function()
    for _, name in ipairs({ "status", "log" }) do
      local r = h.relua({ name }, { env = { RELUA_HOME = h.tmpdir() } })
      assert.are.equal(2, r.code)
      assert.matches("^relua: no ticket given\nusage: relua " .. name .. " TICKET", r.stderr)
      assert.matches("relua help " .. name, r.stderr)
    end
    local r = h.relua({ "run" })
    assert.are.equal(2, r.code)
    assert.matches("usage: relua RECIPE TICKET", r.stderr)
    for _, name in ipairs({ "pause", "unpause" }) do
      r = h.relua({ name, "--reason", "ci-failed" }, { env = { RELUA_HOME = h.tmpdir() } })
      assert.are.equal(2, r.code)
      assert.matches("^relua: " .. name .. ": no SHA given %(%-%-sha%)\nusage: relua " .. name .. " %-%-lane LANE %-%-sha SHA", r.stderr)
      r = h.relua({ name, "--sha", string.rep("a", 40) }, { env = { RELUA_HOME = h.tmpdir() } })
      assert.are.equal(2, r.code)
      assert.matches("^relua: " .. name .. ": no reason given %(%-%-reason%)\nusage: relua " .. name, r.stderr)
    end
  end)

  it("prints the usage line for an unknown option", function()
    local r = h.relua({ "list", "--frob" }, { env = { RELUA_HOME = h.tmpdir() } })
    assert.are.equal(2, r.code)
    assert.matches("^relua: unknown option %-%-frob\nusage: relua list %[%-%-json%]", r.stderr)
    -- relua RECIPE TICKET is relua run: its usage, and its help for --help
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", 'return { phases = { { name = "a", run = function() end } } }')
    r = h.relua({ "r.lua", "T", "--frob" }, { cwd = d, env = { RELUA_HOME = d } })
    assert.are.equal(2, r.code)
    assert.matches("^relua: unknown option %-%-frob\nusage: relua run RECIPE TICKET", r.stderr)
    r = h.relua({ "r.lua", "--help" }, { cwd = d, env = { RELUA_HOME = d } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(h.relua({ "help", "run" }).stdout, r.stdout)
  end)

  it("refuses an unknown command with exit 2", function()
    local r = h.relua({ "help", "frobnicate" })
    assert.are.equal(2, r.code)
    assert.are.equal("relua: unknown command: frobnicate\nrelua help lists the commands\n", r.stderr)
  end)

  it("does not take --help after -- as a request for help", function()
    local r = h.relua({ "status", "--", "--help" }, { env = { RELUA_HOME = h.tmpdir() } })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
  end)

  describe("a group of two-word commands", function()
    local saved
    before_each(function()
      saved = {}
      for k, v in pairs(cli.commands) do saved[k] = v end
      for _, sub in ipairs({ "copy", "migrate" }) do
        cli.command {
          name = "grp " .. sub, summary = sub .. " things", usage = "relua grp " .. sub .. " FROM TO",
          exits = { [0] = "done" }, examples = { "relua grp " .. sub .. " a b" },
          run = function(...) return select("#", ...) end,
        }
      end
    end)
    after_each(function()
      for k in pairs(cli.commands) do cli.commands[k] = nil end
      for k, v in pairs(saved) do cli.commands[k] = v end
    end)

    it("runs the two-word command with the rest of the arguments", function()
      assert.are.equal(2, cli.main("grp", "copy", "a", "b"))
    end)

    it("lists the group's commands", function()
      local text = help.render_group(cli, "grp")
      assert.matches("^usage: relua grp copy FROM TO\n       relua grp migrate FROM TO\n", text)
      assert.matches("\n  grp migrate  migrate things", text)
    end)

    it("refuses the group alone or an unknown subcommand with the group's usage", function()
      local ok, e = pcall(cli.main, "grp")
      assert.is_false(ok)
      assert.are.equal(2, e.exit)
      assert.are.equal("relua grp needs a subcommand", e.message)
      assert.matches("^usage: relua grp copy", e.hint)
      ok, e = pcall(cli.main, "grp", "frob")
      assert.are.equal("unknown command: relua grp frob", e.message)
    end)

    it("requires the help fields of a visible command", function()
      assert.has_error(function() cli.command { name = "x", run = print } end,
        "command x: summary, usage, exits and examples are required")
    end)
  end)
end)
