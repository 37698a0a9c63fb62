-- The traps a first-time user fell into (issue 13), each as the user met it.
local h = require "support.h"
local fs = require "relua.fs"
local git = require "relua.git"
local G = require "support.gitfix"
local servers = require "support.http_servers"

describe("traps", function()
  after_each(function()
    h.cleanup()
    G.cleanup()
  end)

  it("branch_exists{remote=true} finds a remote-tracking branch by its bare name", function()
    local d = G.tmpdir()
    local remote = G.bare(d .. "/remote.git")
    local work = G.repo(d .. "/work")
    G.git(work, "remote", "add", "origin", remote)
    G.git(work, "push", "-q", "origin", "main:release/pypi-v0.2.0")
    G.git(work, "fetch", "-q", "origin")
    local head = G.git(work, "rev-parse", "HEAD")
    local repo <close> = assert(git.open(work))
    assert.are.same({ true, head, "origin" }, { repo:branch_exists("release/pypi-v0.2.0", { remote = true }) })
    assert.are.same({ true, head, "origin" }, { repo:branch_exists("origin/release/pypi-v0.2.0", { remote = true }) })
    assert.are.same({ false }, { repo:branch_exists("release/pypi-v0.3.0", { remote = true }) })
    assert.are.same({ false }, { repo:branch_exists("release/pypi-v0.2.0") })  -- no local branch
    -- on another remote too, origin first
    local other = G.bare(d .. "/other.git")
    G.git(work, "remote", "add", "backup", other)
    G.git(work, "push", "-q", "backup", "main:only-on-backup")
    G.git(work, "fetch", "-q", "backup")
    assert.are.same({ true, head, "backup" }, { repo:branch_exists("only-on-backup", { remote = true }) })
  end)

  it("repo:commit takes folders in its list of paths", function()
    local work = G.repo(G.tmpdir() .. "/work")
    G.write(work, "docs/a.md", "a\n")
    G.write(work, "docs/sub/b.md", "b\n")
    G.write(work, "docs/.gitignore", "*.tmp\n")
    G.write(work, "docs/x.tmp", "ignored\n")
    G.write(work, "other.txt", "not committed\n")
    local repo <close> = assert(git.open(work))
    local id, err = repo:commit("Add docs", { "docs" })
    assert.is_string(id, err)
    assert.are.equal("docs/.gitignore\ndocs/a.md\ndocs/sub/b.md", G.git(work, "show", "--name-only", "--format=", "HEAD"))
    -- a folder removed from the work tree is removed from the commit
    fs.remove(work .. "/docs/sub", { recursive = true })
    assert.is_string((repo:commit("Drop sub", { "docs/sub" })))
    assert.are.equal("README\ndocs/.gitignore\ndocs/a.md", G.git(work, "ls-tree", "-r", "--name-only", "HEAD"))
    assert.are.equal("?? other.txt", G.git(work, "status", "--porcelain"))
  end)

  it("an npm dry run names the registry it would publish to", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", [[
local npm = require "relua.registry.npm"
return { phases = { { name = "publish", run = function() npm.publish("pkg-1.0.0.tgz") end } } }]])
    local r = h.relua({ "r.lua", "1.0.0", "--dry-run" }, { cwd = d, env = { npm_config_registry = false } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("[dry-run] would publish pkg-1.0.0.tgz to https://registry.npmjs.org/", r.stdout, 1, true)
    r = h.relua({ "r.lua", "1.0.0", "--dry-run" }, { cwd = d, env = { npm_config_registry = "http://127.0.0.1:4873" } })
    assert.matches("would publish pkg-1.0.0.tgz to http://127.0.0.1:4873/\n", r.stdout, 1, true)
  end)

  it("the recipe guide's publish example picks only this version's wheels from dist/", function()
    local readme = h.slurp(h.root .. "/doc/recipes.md")
    local expr = readme:match("fs%.glob%((.-)%)")
    assert.is_string(expr)
    local d = h.tmpdir()
    assert(fs.mkdir(d .. "/dist"))
    for _, f in ipairs({ "mylib-0.2.0-py3-none-any.whl", "mylib-0.3.0-py3-none-any.whl", "mylib-0.3.0-cp311-cp311-linux_x86_64.whl" }) do
      h.spit(d .. "/dist/" .. f, "")
    end
    local pattern = assert(load("return " .. expr, "=README", "t", { r = { ticket = "0.3.0" } }))()
    local found = fs.glob(d .. "/" .. pattern)
    for i, f in ipairs(found) do found[i] = fs.basename(f) end
    table.sort(found)
    assert.are.same({ "mylib-0.3.0-cp311-cp311-linux_x86_64.whl", "mylib-0.3.0-py3-none-any.whl" }, found)
  end)

  it("a script given hundreds of arguments gets them all", function()
    local d = h.tmpdir()
    local args = { h.spit(d .. "/publish.lua", 'print(select("#", ...), (select(300, ...)))') }
    for i = 1, 300 do args[#args + 1] = string.format("dist/pkg-%d-py3-none-any.whl", i) end
    local r = h.relua(args)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("300\tdist/pkg-300-py3-none-any.whl\n", r.stdout)
  end)

  it("says '1 phase', not 'all 1 phases'", function()
    local d = h.tmpdir()
    h.spit(d .. "/r.lua", 'return { phases = { { name = "only", run = function() end } } }')
    local env = { RELUA_HOME = d }
    local r = h.relua({ "r.lua", "T" }, { cwd = d, env = env })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("release T done: 1 phase done\n", r.stdout, 1, true)
    r = h.relua({ "r.lua", "T" }, { cwd = d, env = env })
    assert.are.equal("nothing to do: the 1 phase of ticket T is done\n", r.stdout)
    r = h.relua({ "r.lua", "T", "--dry-run" }, { cwd = d, env = env })
    assert.matches("nothing to do: the 1 phase of ticket T is done\n", r.stdout, 1, true)
  end)

  it("a refusal without a body is 'HTTP 401', not 'HTTP 401 ()'", function()
    local server = servers.httpd()
    local ok, e = pcall(function()
      local d = h.tmpdir()
      local tgz = h.spit(d .. "/s.lua", [[
local which, url, file = ...
if which == "npm" then require("relua.registry.npm").publish(file, { registry = url })
else require("relua.registry.pypi").publish(file, { url = url, index = url }) end]])
      -- npm: the tarball is read before anything is sent
      local pack = require("support.registries").npm_pack(d, { { manifest = { name = "refused-pkg", version = "1.0.0" } } })[1]
      local r = h.relua({ tgz, "npm", server.url .. "/refuse/", pack }, { env = { NPM_TOKEN = "tok-123456789" } })
      assert.are.equal(1, r.code)
      assert.matches("HTTP 401: the token from $NPM_TOKEN was refused", r.stderr, 1, true)
      local whl = require("support.registries").build_dists(d, { "Refused.Pkg", "1.0" })[1]
      r = h.relua({ tgz, "pypi", server.url .. "/refuse/", whl }, { env = { PYPI_TOKEN = "tok-123456789" } })
      assert.are.equal(1, r.code)
      assert.matches("HTTP 401: the credentials in $PYPI_TOKEN were refused", r.stderr, 1, true)
      assert.is_nil(r.stderr:find("()", 1, true))
    end)
    server:stop()
    if not ok then error(e, 0) end
  end)
end)
