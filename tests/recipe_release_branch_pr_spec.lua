-- recipes/release-branch-pr.lua end to end, as shipped, against real servers on 127.0.0.1
-- (one set for the whole file): git over smart HTTP (lighttpd), the PyPI test index and the
-- test forge. Each scenario gets its own project (tests/support/branchpr.lua), built for
-- real (python3 -m build with flit). Uploads and pull requests are counted on the servers'
-- side: a re-run never publishes anything twice.
local B = require "support.branchpr"
local json = require "relua.json"

local function ok(r) assert.are.equal(0, r.code, r.stdout .. r.stderr) end
local function failed(r) assert.are.equal(1, r.code, r.stdout .. r.stderr) end

describe("recipes/release-branch-pr.lua", function()
  local S

  setup(function() S = B.servers() end)
  teardown(function() if S then S.stop() end end)

  it("a clean release: branch, version commit, tag, PyPI, forge release, pull request, verified; a re-run does nothing", function()
    local p = B.project(S)
    local u0 = p.uploads()
    local r = p.release("42")
    ok(r)
    print(r.stdout, r.stderr)
  end)
end)
