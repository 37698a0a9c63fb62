-- make install: one self-contained binary, plus the shipped recipes and playbooks.
local h = require "support.h"

describe("make install", function()
  after_each(h.cleanup)

  it("installs a binary that runs from anywhere, and share/relua", function()
    local prefix = h.tmpdir() .. "/usr"
    local r = h.sh("make -s install PREFIX=" .. h.quote(prefix), { cwd = h.root })
    assert.are.equal(0, r.code, r.stderr)
    assert.truthy(h.slurp(prefix .. "/share/relua/recipes/release.lua"):find("phases", 1, true))
    assert.are.equal(0, h.sh("test -d " .. h.quote(prefix .. "/share/relua/playbooks")).code)
    -- the library and the lazy modules travel inside the binary: run it away from the tree
    local out = h.sh(h.quote(prefix .. "/bin/relua") .. [[ -e 'print(require("relua.http").user_agent, type(require("relua.git").open))']],
      { cwd = "/", env = { RELUA_LIB = false } })
    assert.are.equal(0, out.code, out.stderr)
    assert.matches("^relua/%d+%.%d+%.%d+\tfunction\n$", out.stdout)
  end)
end)
