-- make install / make uninstall: the binary, its lazy modules as files beside it, and the
-- shared data (recipes, playbooks).
local h = require "support.h"

local function exists(p) return h.sh("test -e " .. h.quote(p)).code == 0 end

describe("make install", function()
  after_each(h.cleanup)

  it("installs a binary that runs from anywhere with its modules beside it, and uninstalls it all", function()
    local prefix = h.tmpdir() .. "/usr"
    local r = h.sh("make -s install PREFIX=" .. h.quote(prefix), { cwd = h.root })
    assert.are.equal(0, r.code, r.stderr)
    assert.truthy(h.slurp(prefix .. "/share/relua/recipes/release.lua"):find("phases", 1, true))
    assert.is_true(exists(prefix .. "/share/relua/playbooks"))
    for _, m in ipairs({ "http", "git", "crypto", "archive", "readline" }) do
      assert.is_true(exists(prefix .. "/lib/relua/" .. m .. ".so"), m)
    end
    -- the library travels inside the binary, the modules beside it: run it away from the tree
    local out = h.sh(h.quote(prefix .. "/bin/relua") .. [[ -e 'print(require("relua.http").user_agent, type(require("relua.git").open))']],
      { cwd = "/", env = { RELUA_LIB = false } })
    assert.are.equal(0, out.code, out.stderr)
    assert.matches("^relua/%d+%.%d+%.%d+\tfunction\n$", out.stdout)

    -- a copy of the binary elsewhere finds them in the folder compiled in
    local d = h.tmpdir()
    assert.are.equal(0, h.sh("cp " .. h.quote(prefix .. "/bin/relua") .. " " .. h.quote(d)).code)
    out = h.sh(h.quote(d .. "/relua") .. [[ -e 'print(type(require("relua.git").open))']], { cwd = "/" })
    assert.are.equal(0, out.code, out.stderr)
    assert.are.equal("function\n", out.stdout)

    r = h.sh("make -s uninstall PREFIX=" .. h.quote(prefix), { cwd = h.root })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", h.sh("find " .. h.quote(prefix) .. " -type f").stdout)
  end)

  it("installs under DESTDIR with the final paths compiled in", function()
    local root = h.tmpdir()
    local prefix = h.tmpdir() .. "/opt/relua"
    local r = h.sh("make -s install DESTDIR=" .. h.quote(root) .. " PREFIX=" .. h.quote(prefix), { cwd = h.root })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(exists(root .. prefix .. "/bin/relua"))
    assert.is_false(exists(prefix .. "/bin/relua"))
    -- the modules' folder compiled in is the final one, not the staging one
    local bin = h.quote(root .. prefix .. "/bin/relua")
    assert.are.equal(0, h.sh("grep -qF " .. h.quote(prefix .. "/lib/relua") .. " " .. bin).code)
    assert.are.equal(1, h.sh("grep -qF " .. h.quote(root .. prefix) .. " " .. bin).code)
  end)
end)
