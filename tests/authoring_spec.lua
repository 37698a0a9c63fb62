-- For recipe authors and shell users: relua init, relua check, the shell completions, the
-- man pages, the LuaLS type definitions, and the REPL's conveniences.
local h = require "support.h"
local json = require "relua.json"
local pretty = require "relua.pretty"

local function esc(s) return (s:gsub("%p", "%%%0")) end

local BAD = [[
return {
  nmae = "typo",
  phases = {
    { name = "build", run = function() end, revet = function() end },
    { name = "bad name!", run = function() end },
    { name = "build", run = function() end },
    { name = "publish" },
    { name = "tag", run = function() end, revert = "not a function" },
  },
}
]]

describe("relua init", function()
  after_each(h.cleanup)

  it("writes a starter recipe, playbooks/, .luarc.json, and ignores the ledger", function()
    local d = h.tmpdir() .. "/proj"
    local r = h.relua({ "init", d })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(h.slurp(h.root .. "/recipes/release.lua"), h.slurp(d .. "/release.lua"))
    assert.are.equal(0, h.sh("test -d " .. h.quote(d .. "/playbooks")).code)
    local rc = assert(json.decode(h.slurp(d .. "/.luarc.json")))
    assert.are.equal("Lua 5.4", rc["runtime.version"])
    local types = rc["workspace.library"][1]
    assert.matches("/share/relua/types$", types)
    assert.matches("---@class relua.Recipe", h.slurp(types .. "/relua/recipe.lua"), 1, true)
    assert.are.equal(".relua/", h.slurp(d .. "/.gitignore"):match("\n(%.relua/)\n$"))
    assert.are.equal(0, h.relua({ "check", d .. "/release.lua" }).code)
  end)

  it("refuses to overwrite anything, and writes nothing then", function()
    local d = h.tmpdir()
    h.spit(d .. "/.luarc.json", "{}")
    local r = h.relua({ "init", d })
    assert.are.equal(2, r.code)
    assert.matches(esc(d .. "/.luarc.json") .. " exists: relua init writes nothing over an existing file", r.stderr)
    assert.are.equal("{}", h.slurp(d .. "/.luarc.json"))
    assert.are.equal(1, h.sh("test -e " .. h.quote(d .. "/release.lua")).code)
    assert.are.equal(1, h.sh("test -e " .. h.quote(d .. "/.gitignore")).code)
  end)

  it("adds the ledger to an existing .gitignore once, and knows its templates", function()
    local d = h.tmpdir()
    h.spit(d .. "/.gitignore", "node_modules")
    assert.are.equal(0, h.relua({ "init", d }).code)
    assert.are.equal("node_modules\n.relua/\n", h.slurp(d .. "/.gitignore"))
    local e = h.tmpdir()
    h.spit(e .. "/.gitignore", "/.relua/\n")
    assert.are.equal(0, h.relua({ "init", "--template=release", e }).code)
    assert.are.equal("/.relua/\n", h.slurp(e .. "/.gitignore"))
    local r = h.relua({ "init", "--template=nope", h.tmpdir() })
    assert.are.equal(2, r.code)
    -- the templates are the shipped recipes
    local shipped = {}
    for f in h.sh("ls " .. h.quote(h.root .. "/recipes")).stdout:gmatch("([%w%-_]+)%.lua") do shipped[#shipped + 1] = f end
    table.sort(shipped)  -- as relua sorts them (ls may not: release-branch-pr.lua, release.lua)
    assert.matches('unknown template "nope"\nthe templates are ' .. esc(table.concat(shipped, ", ")) ..
      "; also deploy %(release%), release%-branch %(release%-branch%-pr%)\n$", r.stderr)
    -- the deploy release-run by its name in the docs (make demo DEMO=deploy)
    local f = h.tmpdir()
    r = h.relua({ "init", "--template", "deploy", f })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(h.slurp(h.root .. "/recipes/release.lua"), h.slurp(f .. "/release.lua"))
    -- and the release branch + PR one by the shorter name the help shows
    f = h.tmpdir()
    r = h.relua({ "init", "--template=release-branch", f })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(h.slurp(h.root .. "/recipes/release-branch-pr.lua"), h.slurp(f .. "/release.lua"))
  end)
end)

describe("relua check", function()
  after_each(h.cleanup)

  it("lists every problem of a recipe and runs nothing", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", 'require("relua.fs").write("' .. d .. '/ran", "x")\n' .. BAD)
    local r = h.relua({ "check", d .. "/r.lua" })
    assert.are.equal(2, r.code)
    local p = esc(d .. "/r.lua: ")
    assert.matches(p .. "unknown key nmae %(did you mean name%?%)\n", r.stderr)
    assert.matches(p .. "phase build: unknown key revet %(did you mean revert%?%)\n", r.stderr)
    assert.matches(p .. 'phase 2 has an invalid name "bad name!"', r.stderr)
    assert.matches(p .. "phase build appears twice %(phases 1 and 3%)\n", r.stderr)
    assert.matches(p .. "phase publish has no run function\n", r.stderr)
    assert.matches(p .. "phase tag: revert must be a function\n", r.stderr)
    assert.matches(p .. "6 problems; nothing was run\n$", r.stderr)
    assert.are.equal(1, h.sh("test -e " .. h.quote(d .. "/ran")).code)  -- relua.fs was guarded
  end)

  it("reports a preflight that is not a list, as a run does", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", 'return { preflight = "clean-tree", phases = { { name = "a", run = function() end } } }')
    local r = h.relua({ "check", d .. "/r.lua" })
    assert.are.equal(2, r.code)
    assert.matches("r%.lua: preflight must be a list of checks %(see doc/preflight%.md%)\n", r.stderr)
    r = h.relua({ "r.lua", "1.0" }, { cwd = d })
    assert.are.equal(2, r.code)
    assert.matches("^relua: invalid recipe r%.lua: preflight must be a list of checks", r.stderr)
  end)

  it("checks a --from, and says what is fine", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", [[return { phases = {
      { name = "a", run = function() end, revert = function() end },
      { name = "b", run = function() end, irreversible = true } } }]])
    local r = h.relua({ "check", d .. "/r.lua", "--from=c" })
    assert.are.equal(2, r.code)
    assert.matches("%-%-from=c names no phase: the phases are a, b\n", r.stderr)
    r = h.relua({ "check", d .. "/r.lua", "--from=b" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches(esc(d .. "/r.lua") .. ": ok: 2 phases: a, b %(no revert%) %(point of no return%)\n", r.stdout)
    r = h.relua({ "check", d .. "/nope.lua" })
    assert.are.equal(2, r.code)
    h.spit(d .. "/syntax.lua", "return {")
    r = h.relua({ "check", d .. "/syntax.lua" })
    assert.are.equal(2, r.code)
    assert.matches("syntax%.lua:1: unexpected symbol near <eof>", r.stderr)
  end)
end)

describe("relua check: unreachable --from", function()
  after_each(h.cleanup)

  local RECIPE = [[return { name = "abc", phases = {
    { name = "a", run = function() end },
    { name = "b", run = function() if io.open("broken") then error("b broke") end end },
    { name = "c", run = function() end } } }]]

  local function pb(id, symptom, resume)
    return string.format("return { id = %q, symptom = %s, resume = %s }", id, symptom, resume and string.format("%q", resume) or "nil")
  end

  it("the phase each playbook of the recipe resumes at after the failure it matches", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", RECIPE)
    assert(os.execute("mkdir " .. h.quote(d .. "/playbooks")))
    h.spit(d .. "/playbooks/fine.lua", pb("fine", '{ phase = "b" }', "a"))
    h.spit(d .. "/playbooks/ahead.lua", pb("ahead", '{ phase = "a" }', "c"))
    h.spit(d .. "/playbooks/gone.lua", pb("gone", '{ message = "x" }', "deploy"))
    h.spit(d .. "/playbooks/never.lua", pb("never", '{ phase = "deploy" }', nil))
    local env = { RELUA_PLAYBOOKS = false, RELUA_HOME = false }
    local r = h.relua({ "check", "r.lua" }, { cwd = d, env = env })
    assert.are.equal(2, r.code, r.stdout)
    assert.matches("r.lua: playbook ahead (" .. d .. "/playbooks/ahead.lua:1) resumes at phase c after a failure in "
      .. "phase a: --from=c is unreachable: cannot start at phase c: the earlier phase a is not done (failed)\n", r.stderr, 1, true)
    assert.matches("r.lua: playbook gone (" .. d .. "/playbooks/gone.lua:1) resumes at phase deploy (--from=deploy), "
      .. "which the recipe does not have: the phases are a, b, c\n", r.stderr, 1, true)
    assert.matches("r.lua: playbook never (" .. d .. "/playbooks/never.lua:1): its symptom's phase deploy is no phase "
      .. "of the recipe, so it never matches", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("playbook fine", 1, true))
    assert.matches("r.lua: 3 problems; nothing was run\n$", r.stderr)
    -- shared playbooks (RELUA_PLAYBOOKS) apply only when their symptom names a phase of this recipe
    assert(os.execute("mv " .. h.quote(d .. "/playbooks") .. " " .. h.quote(d .. "/shared")))
    env.RELUA_PLAYBOOKS = d .. "/shared"
    r = h.relua({ "check", "r.lua" }, { cwd = d, env = env })
    assert.are.equal(2, r.code)
    assert.matches("playbook ahead", r.stderr, 1, true)
    assert.matches("r.lua: 1 problem; nothing was run\n$", r.stderr)
  end)

  it("--from with --ticket: the runner's own rule on the ticket's recorded phases", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", RECIPE)
    local env = { RELUA_PLAYBOOKS = false, RELUA_HOME = false, RELUA_STORE = false }
    local r = h.relua({ "check", "r.lua", "--from=b", "--ticket=T1" }, { cwd = d, env = env })
    assert.are.equal(2, r.code)
    assert.matches("r.lua: --from=b is unreachable for a new ticket T1: cannot start at phase b: the earlier phase a "
      .. "is not done (pending) (run the release without --from to continue where it stopped, or use --from=a)\n", r.stderr, 1, true)
    h.spit(d .. "/broken", "")
    assert.are.equal(1, h.relua({ "r.lua", "T1" }, { cwd = d, env = env }).code)
    r = h.relua({ "check", "r.lua", "--from=b", "--ticket=T1" }, { cwd = d, env = env })
    assert.are.equal(0, r.code, r.stderr)
    r = h.relua({ "check", "r.lua", "--from=c", "--ticket=T1" }, { cwd = d, env = env })
    assert.are.equal(2, r.code)
    assert.matches("--from=c is unreachable for the recorded ticket T1: cannot start at phase c: the earlier phase b "
      .. "is not done (failed)", r.stderr, 1, true)
    -- what check says is what the run does
    local run = h.relua({ "r.lua", "T1", "--from=c" }, { cwd = d, env = env })
    assert.are.equal(2, run.code)
    assert.matches("the earlier phase b is not done (failed)", run.stderr, 1, true)
    assert.are.equal(2, h.relua({ "check", "r.lua", "--ticket=T1" }, { cwd = d, env = env }).code)
  end)
end)

describe("shell completion", function()
  after_each(h.cleanup)

  -- A ledger with two tickets and a recipe, in a folder; relua on PATH.
  local function project()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", [[return { phases = { { name = "build", run = function() end },
      { name = "publish", run = function() end } } }]])
    for _, t in ipairs({ "1.0.0", "1.1.0" }) do assert.are.equal(0, h.relua({ "r.lua", t }, { cwd = d }).code) end
    assert(os.execute("mkdir " .. h.quote(d .. "/bin")))
    local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
    assert(os.execute("ln -s " .. h.quote(bin) .. " " .. h.quote(d .. "/bin/relua")))
    return d
  end

  local function bash(d, line)
    local script = table.concat({
      "source " .. h.quote(h.root .. "/completions/relua.bash"),
      "COMP_LINE=" .. h.quote(line) .. "; COMP_POINT=${#COMP_LINE}",
      -- bash splits at '=' too: --from=pu is three words
      [==[read -r -a COMP_WORDS <<< "${COMP_LINE//=/ = }"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))]==],
      [==[[[ $COMP_LINE == *" " ]] && { COMP_WORDS+=(""); COMP_CWORD=$((COMP_CWORD + 1)); }]==],
      [==[[[ $COMP_LINE == *= ]] && { COMP_WORDS+=(""); COMP_CWORD=$((COMP_CWORD + 1)); }]==],
      "_relua; printf '%s\\n' \"${COMPREPLY[@]}\"",
    }, "\n")
    local r = h.sh("bash -c " .. h.quote(script), { cwd = d, env = { PATH = d .. "/bin:" .. os.getenv("PATH") } })
    assert.are.equal(0, r.code, r.stderr)
    return r.stdout
  end

  it("bash: commands, options, tickets, a recipe's phases after --from=", function()
    local d = project()
    assert.are.equal("status\n", bash(d, "relua stat"))
    assert.are.equal("1.0.0\n1.1.0\n", bash(d, "relua status "))
    assert.are.equal("1.1.0\n", bash(d, "relua revert 1.1"))
    assert.are.equal("--from=\n", bash(d, "relua r.lua 1.0.0 --fr"))
    assert.are.equal("publish\n", bash(d, "relua r.lua 1.0.0 --from=pu"))
    assert.are.equal("build\npublish\n", bash(d, "relua run r.lua 1.0.0 --from="))
    assert.are.equal("--json\n", bash(d, "relua status 1.0.0 --j"))
    assert.matches("\nr%.lua\n", "\n" .. bash(d, "relua r"))  -- a recipe file
    assert.are.equal("recover\nrepl\nrevert\nrun\n", bash(d, "relua help r"))
  end)

  it("bash: playbook ids, and the value of an option given as the next word", function()
    local d = project()
    assert.are.equal("release-verify-race\n", bash(d, "relua playbook show release-v"))
    assert.are.equal("release-verify-race\n", bash(d, "relua recover 1.0.0 --playbook release-v"))
    assert.are.equal("release-verify-race\n", bash(d, "relua recover 1.0.0 --playbook=release-v"))
    assert.are.equal("--yes\n", bash(d, "relua recover 1.0.0 --playbook release-verify-race --y"))
    assert.are.equal("1.1.0\n", bash(d, "relua playbook new my-fix --from 1.1"))
    assert.are.equal("publish\n", bash(d, "relua r.lua 1.0.0 --from pu"))
    assert.are.equal("dual-push\n", bash(d, "relua init --template du"))
    -- a value relua cannot list completes to nothing, not to a ticket
    assert.are.equal("\n", bash(d, "relua pause --lane "))  -- printf of no candidates
  end)

  it("zsh: the same candidates through compadd", function()
    local d = project()
    local script = table.concat({
      [==[compadd() { local s=""; [[ $1 == -S ]] && { s=" (no space)"; shift 2; }; [[ $1 == -- ]] && shift; print -r -- "compadd$s: $*"; }]==],
      [[_files() { print -r -- "_files"; }]],
      "words=(relua r.lua 1.0.0 --from=); CURRENT=4",
      "source " .. h.quote(h.root .. "/completions/_relua"),
      "words=(relua status ''); CURRENT=3",
      "source " .. h.quote(h.root .. "/completions/_relua"),
      "words=(relua r.lua 1.0.0 --fr); CURRENT=4",
      "source " .. h.quote(h.root .. "/completions/_relua"),
      "words=(relua ''); CURRENT=2",
      "source " .. h.quote(h.root .. "/completions/_relua"),
    }, "\n")
    local r = h.sh("zsh -f -c " .. h.quote(script), { cwd = d, env = { PATH = d .. "/bin:" .. os.getenv("PATH") } })
    assert.are.equal(0, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("compadd: --from=build --from=publish", lines[1])
    assert.are.equal("compadd: 1.0.0 1.1.0", lines[2])
    assert.are.equal("compadd (no space): --from=", lines[3])
    assert.matches("^compadd: check controls diagnose help init list log pause playbook recover repl revert run status store unpause version", lines[4])
    assert.are.equal("_files", lines[5])
  end)
end)

describe("man pages", function()
  after_each(h.cleanup)

  it("relua(1) has every command's usage and options; both pages install", function()
    local prefix = h.tmpdir() .. "/usr"
    local r = h.sh("make -s install PREFIX=" .. h.quote(prefix), { cwd = h.root })
    assert.are.equal(0, r.code, r.stderr)
    local page = h.sh("MANWIDTH=200 man -l " .. h.quote(prefix .. "/share/man/man1/relua.1"), { env = { MANPAGER = "cat", PAGER = "cat" } })
    assert.are.equal(0, page.code, page.stderr)
    local text = page.stdout:gsub(".\b", "")
    local cli = require "relua.cli"
    for name, c in pairs(cli.commands) do
      if not c.hidden then
        assert.matches(esc(c.usage[1]), text, 1, false, name)
        for _, o in ipairs(c.options) do assert.matches("\n%s+" .. esc(o[1]) .. "\n", text) end
      end
    end
    assert.matches("EXIT STATUS", text, 1, true)
    local five = h.sh("MANWIDTH=200 man -l " .. h.quote(prefix .. "/share/man/man5/relua-recipe.5"), { env = { MANPAGER = "cat" } })
    assert.are.equal(0, five.code)
    assert.matches("PHASE KEYS", five.stdout:gsub(".\b", ""), 1, true)
    for _, f in ipairs({ "/share/bash-completion/completions/relua", "/share/zsh/site-functions/_relua",
                         "/share/relua/types/relua/recipe.lua", "/share/relua/types/relua/fs.lua" }) do
      assert.are.equal(0, h.sh("test -f " .. h.quote(prefix .. f)).code, f)
    end
    -- the installed relua finds its installed data: init writes a .luarc.json pointing there
    local d = h.tmpdir()
    r = h.sh(h.quote(prefix .. "/bin/relua") .. " init " .. h.quote(d))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ prefix .. "/share/relua/types" }, json.decode(h.slurp(d .. "/.luarc.json"))["workspace.library"])
    assert.are.equal(0, h.sh("make -s uninstall PREFIX=" .. h.quote(prefix), { cwd = h.root }).code)
    assert.are.equal("", h.sh("find " .. h.quote(prefix) .. " -type f").stdout)
  end)
end)

describe("relua-recipe(5)", function()
  it("documents every key relua accepts in a recipe and a phase", function()
    local src = h.slurp(h.root .. "/doc/man/relua-recipe.5.scd")
    local schema = require "relua.release.schema"
    for section, known in pairs({ ["RECIPE KEYS"] = schema.recipe, ["PHASE KEYS"] = schema.phase }) do
      local text = assert(src:match("\n# " .. section .. "\n(.-)\n# "), section)
      local missing = {}
      for key in pairs(known) do
        if not text:find("\n*" .. key .. "*\n", 1, true) then missing[#missing + 1] = key end
      end
      table.sort(missing)
      assert.are.same({}, missing, section)
    end
  end)
end)

describe("type definitions", function()
  it("cover every module of lib/ and parse as Lua; the recipe shapes are there", function()
    local types = h.root .. "/build/share/relua/types"
    for path in h.sh("cd " .. h.quote(h.root) .. " && find lib -name '*.lua'").stdout:gmatch("[^\n]+") do
      local meta = types .. "/" .. path:gsub("^lib/", "")
      local text = h.slurp(meta)
      assert.matches("^%-%-%-@meta ", text, 1, false, meta)
      assert.is_truthy(load(text, "=" .. meta), meta)
    end
    local fs = h.slurp(types .. "/relua/fs.lua")
    assert.matches("---@param path string\n---@return string|nil data\n", fs, 1, true)
    assert.matches("\nfunction M.read(path) end\n", fs, 1, true)
    local git = h.slurp(types .. "/relua/git.lua")
    assert.matches("---@return relua.git.Repository|nil repo", git, 1, true)
    local shapes = h.slurp(types .. "/relua/recipe.lua")
    for _, class in ipairs({ "relua.Recipe", "relua.Phase", "relua.Playbook", "relua.Run" }) do
      assert.matches("---@class " .. class .. "\n", shapes, 1, true)
    end
    -- every key relua accepts in a recipe, a phase and a playbook is a field of its class
    local function fields(class)
      local block = assert(shapes:match("\n%-%-%-@class " .. class:gsub("%.", "%%.") .. "\n(.-)\n\n"), class)
      local out = {}
      for name in block:gmatch("%-%-%-@field ([%w_]+)") do out[name] = true end
      return out
    end
    local schema = require "relua.release.schema"
    for class, known in pairs({ ["relua.Recipe"] = schema.recipe, ["relua.Phase"] = schema.phase,
        ["relua.Playbook"] = require("relua.playbook").FIELDS }) do
      local have, missing = fields(class), {}
      for key in pairs(known) do if not have[key] then missing[#missing + 1] = key end end
      table.sort(missing)
      assert.are.same({}, missing, class)
    end
    assert.matches("---@field resume string|false?", shapes, 1, true)
  end)
end)

describe("the REPL", function()
  after_each(h.cleanup)

  it("shows a ticket's summary first and its record on request", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", [[return { phases = { { name = "a", run = function() end },
      { name = "b", run = function() error("broke") end } } }]])
    h.relua({ "r.lua", "7" }, { cwd = d })
    local r = h.relua({ "repl" }, { cwd = d, stdin = 'ticket("7")\nticket("7"):full().summary.phase\n' })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^ticket 7: failed in phase b %(rc=1%)\nphases: a=done b=failed\nerror: r%.lua:2: broke\n"
      .. "next: relua " .. esc(d) .. "/r%.lua 7 %-%-from=b  %(or relua revert 7%)\n", r.stdout)
    assert.matches('\n"b"\n$', r.stdout)
  end)

  it("binds log, pretty and the registry clients, and drops trailing nils", function()
    local r = h.relua({ "repl" }, { stdin = 'type(log.info), type(pretty.format), type(registry.npm.publish), type(registry.pypi.publish)\n'
      .. 'local function f() return 1, nil, nil end return f()\nreturn nil\n' })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal('"function"\t"function"\t"function"\t"function"\n1\nnil\n', r.stdout)
  end)

  it("prints nested tables by level, not drifting right under long keys", function()
    local text = pretty.format({ a_rather_long_key_name = { x = string.rep("y", 60), z = { 1, 2 } } })
    assert.are.equal('{\n  a_rather_long_key_name = {\n    x = "' .. string.rep("y", 60) .. '",\n    z = { 1, 2 }\n  }\n}', text)
  end)
end)
