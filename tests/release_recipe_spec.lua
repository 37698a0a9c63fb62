-- The shipped recipe (recipes/release.lua) on real repositories: a bare remote, a
-- developer's clone that pushes, and a deployed checkout that the recipe releases.
local h = require "support.h"
local S = require "support.release"
local git = require "relua.git"
local fs = require "relua.fs"

local AUTHOR = { name = "Spec", email = "spec@example.invalid" }
local RECIPE = h.root .. "/recipes/release.lua"

-- remote.git, dev (pushes), app (the checkout released); returns the sandbox and helpers.
local function world()
  local s = S.sandbox()
  local remote, dev = s.dir .. "/remote.git", s.dir .. "/dev"
  local bare = assert(git.init(remote, { bare = true }))
  bare:close()
  local d = assert(git.clone(remote, dev))
  assert(fs.write(dev .. "/README", "v1\n"))
  assert(d:commit("v1", { "README" }, { author = AUTHOR }))
  local branch = d:head().branch
  assert(d:push("origin", { branch }))
  local a = assert(git.clone(remote, s.dir .. "/app"))
  a:close()
  s.rel = s.dir .. "/home/releases"
  local w = { s = s, dev = d, branch = branch }
  function w.push(files, msg)
    local paths = {}
    for name, content in pairs(files) do
      local dir = name:match("^(.*)/")
      if dir then assert(fs.mkdir(dev .. "/" .. dir)) end
      assert(fs.write(dev .. "/" .. name, content, content:match("^#!") and { mode = 493 } or nil))
      paths[#paths + 1] = name
    end
    table.sort(paths)
    return assert(d:commit(msg or "change", paths, { author = AUTHOR })), assert(d:push("origin", { branch }))
  end
  function w.run(args, env)
    local e = { RELEASE_BRANCH = branch, RELUA_HOME = s.dir .. "/home", RELUA_STORE = s.store_url or false }
    for k, v in pairs(env or {}) do e[k] = v end
    local bin = S.bin()
    local parts = { h.quote(bin) }
    for _, x in ipairs(args) do parts[#parts + 1] = h.quote(x) end
    return h.sh(table.concat(parts, " "), { cwd = s.dir .. "/app", env = e })
  end
  function w.head()
    local r = assert(git.open(s.dir .. "/app"))
    local id = r:head().id
    r:close()
    return id
  end
  return w
end

describe("recipes/release.lua", function()
  after_each(function() S.cleanup() end)

  it("releases the remote's branch into the checkout, migrates, runs the ticket's files, verifies", function()
    local w = world()
    local base = w.head()
    local target = w.push({
      ["migrate.sh"] = "#!/bin/sh\necho migrated > ../migrated\n",
      ["verify.sh"] = "#!/bin/sh\ntest -f ../migrated\n",
      ["releases/77-a.lua"] = "local r = ... r.state.TICKET_RAN = true",
    })
    local r = w.run({ RECIPE, "77" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(target, w.head())
    assert.is_true(w.s:exists("migrated"))
    local st = w.s:state("77")
    assert.are.equal(base, st.state.BASE_SHA)
    assert.are.equal(target, st.state.MERGE_SHA)
    assert.is_true(st.state.TICKET_RAN)
    assert.are.equal(target, st.steps.merge.result)
    -- revert puts the checkout back at BASE_SHA
    r = w.run({ "revert", "77" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(base, w.head())
  end)

  it("refuses a dirty checkout and a release with nothing new, in prepare", function()
    local w = world()
    assert(fs.write(w.s.dir .. "/app/README", "local edit\n"))
    local r = w.run({ RECIPE, "1" })
    assert.are.equal(1, r.code)
    assert.matches("Working tree is dirty", r.stderr)
    assert.matches("release failed in phase prepare", r.stderr)
    assert(fs.write(w.s.dir .. "/app/README", "v1\n"))
    r = w.run({ RECIPE, "2" })
    assert.are.equal(1, r.code)
    assert.matches("already up%-to%-date with origin/" .. w.branch .. ": nothing to release", r.stderr)
  end)

  it("in a dry run fetches nothing and leaves the checkout alone", function()
    local w = world()
    local base = w.head()
    w.push({ ["x"] = "y\n" })
    local r = w.run({ RECIPE, "5", "--dry-run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("%[dry%-run%] would fetch origin", r.stdout)
    assert.are.equal(base, w.head())
    assert.is_false(w.s:exists("home"))
  end)
end)
