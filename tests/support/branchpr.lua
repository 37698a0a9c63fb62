-- The world of recipes/release-branch-pr.lua for its spec: the servers and projects of
-- tests/support/pypinpm.lua (git over smart HTTP, the PyPI test index, the test forge; no
-- npm registry), with the recipe's settings and what the spec looks at on the servers:
-- the release branches, the pull requests, the forge releases.
--
--   local B = require "support.branchpr"
--   local S = B.servers()                 -- in setup(); S.stop() in teardown()
--   local p = B.project(S)                -- main at 1.0.0+dev, tagged v1.0.0
--   p.release("42")                       -- relua recipes/release-branch-pr.lua 42 in p.dir
local W = require "support.pypinpm"
local gitfix = require "support.gitfix"
local h = require "support.h"
local fs = require "relua.fs"
local http = require "relua.http"
local json = require "relua.json"

local M = {}

M.RECIPE = h.root .. "/recipes/release-branch-pr.lua"

function M.servers() return W.servers({ npm = false }) end

local function forge_get(s, path)
  local resp = assert(http.get(s.forge.api .. path, { retry = false, progress = false,
    headers = { authorization = "Bearer " .. s.forge.token } }))
  assert(resp.status == 200, path .. " answered " .. resp.status)
  return json.decode(resp.body)
end

--- A new project (W.project) with the recipe's settings, and more helpers:
---   p.release(ticket [, env])   relua recipes/release-branch-pr.lua TICKET
---   p.branches()                the release branches on the server, sorted
---   p.branch_tip(name)          a branch's commit on the server (nil: not there)
---   p.push_branch(name, commits) a branch from main with commits {{message, file, content}}
---   p.pulls()                   every pull request on the forge {number, state, head, title}
---   p.releases()                the tags of the forge releases, sorted
---   p.uploads()                 the PyPI uploads so far (all projects)
---   p.pull_posts()              POST /pulls the forge answered 201 so far (this project)
---   p.publish_by_hand(v)        version v built from other content, uploaded to the index
function M.project(s, opts)
  opts = opts or {}
  local p = W.project(s, { name = opts.name, env = {} })
  local settings = {
    BRANCH_PR_BUILD = W.PYTHON .. ' -m build --no-isolation --sdist --wheel --outdir "$BRANCH_PR_DIST" .',
    BRANCH_PR_PYPI_URL = s.pypi.legacy, BRANCH_PR_PYPI_USER = s.pypi.user,
    BRANCH_PR_FORGE_API = s.forge.api, BRANCH_PR_FORGE_REPO = p.repo,
  }
  for k, v in pairs(settings) do p.env[k] = v end
  for k, v in pairs(opts.env or {}) do p.env[k] = v end
  function p.release(ticket, extra) return p.run({ M.RECIPE, ticket }, extra) end
  function p.branch_tip(name)
    local out = gitfix.git("/", "ls-remote", p.authed, "refs/heads/" .. name)
    return out:match("^(%x+)")
  end
  function p.branches()
    local out = {}
    for name in gitfix.git("/", "ls-remote", "--heads", p.authed):gmatch("refs/heads/(release/[^%s]+)") do
      out[#out + 1] = name
    end
    table.sort(out)
    return out
  end
  -- a branch pushed from main by "someone else", with the given commits on it
  function p.push_branch(name, commits)
    local other = gitfix.tmpdir() .. "/other"
    gitfix.git("/", "clone", "-q", p.authed, other)
    gitfix.git(other, "checkout", "-q", "-b", name)
    local sha
    for _, c in ipairs(commits) do sha = gitfix.commit(other, c[1], c[2], c[3]) end
    gitfix.git(other, "push", "-q", "origin", name)
    fs.remove(other, { recursive = true })
    return sha
  end
  function p.pulls()
    local out = {}
    for _, pr in ipairs(forge_get(s, "/repos/" .. p.repo .. "/pulls?state=all")) do
      out[#out + 1] = { number = pr.number, state = pr.state, head = pr.head.ref, base = pr.base.ref, title = pr.title }
    end
    return out
  end
  function p.releases()
    local out = {}
    for _, rel in ipairs(forge_get(s, "/repos/" .. p.repo .. "/releases")) do out[#out + 1] = rel.tag_name end
    table.sort(out)
    return out
  end
  function p.uploads() return s.pypi.uploads() end
  -- "someone" builds version v from other content and uploads it to the index by hand
  function p.publish_by_hand(v)
    local other = gitfix.tmpdir() .. "/by-hand"
    gitfix.git("/", "clone", "-q", p.authed, other)
    assert(require("relua.versionfile").set(other .. "/pyproject.toml", v))
    gitfix.write(other, "src/" .. p.py_module .. "/__init__.py", '"""Published by hand."""\nVALUE = 2\n')
    local r = h.sh(string.format("cd %s && SOURCE_DATE_EPOCH=1700000000 %s -m build --no-isolation --sdist --wheel --outdir dist . >/dev/null 2>&1",
      h.quote(other), W.PYTHON))
    assert(r.code == 0, "the build by hand failed")
    local files = fs.glob(other .. "/dist/*")
    require("relua.log").level("error")
    local ok, e = pcall(require("relua.registry.pypi").publish_all, files,
      { url = s.pypi.legacy, user = s.pypi.user, password = s.pypi.password })
    require("relua.log").level("info")
    assert(ok, e)
    return files
  end
  function p.pull_posts()
    local n = 0
    for _, line in ipairs(s.forge.stats().log) do
      if line == "POST /repos/" .. p.repo .. "/pulls 201" then n = n + 1 end
    end
    return n
  end
  return p
end

return M
