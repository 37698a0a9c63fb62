-- --dry-run changes nothing: relua's own mutating primitives only say what they would do.
local h = require "support.h"
local fs = require "relua.fs"
local dryrun = require "relua.dryrun"

local RECIPE = [[
local fs = require "relua.fs"
local proc = require "relua.proc"
local git = require "relua.git"
return { phases = {
  { name = "publish", run = function(r)
      fs.write("out.txt", "hello")
      fs.mkdir("build/dist")
      print("proc", proc.run({ "touch", "made-by-proc" }).code)
      local repo <close> = git.open(".")
      print("head", repo:head().id == r.state.HEAD or "new")
      print("tag", repo:tag("v9.9.9", "HEAD"))
      print("push", repo:push("origin", { "v9.9.9" }))
      print("http", require("relua.http").post("http://user:secret@127.0.0.1:9/upload", { body = "x" }))
      print("read", fs.read("release.lua") ~= nil)
  end },
} }
]]

describe("--dry-run", function()
  after_each(h.cleanup)

  local function sandbox()
    local d = h.tmpdir()
    h.spit(d .. "/release.lua", RECIPE)
    local git = "git -c user.name=t -c user.email=t@example.com"
    assert.are.equal(0, h.sh(table.concat({
      "git init -q --bare remote.git",
      "git init -q work && cd work && cp ../release.lua . && git add release.lua",
      git .. " commit -qm init && git remote add origin ../remote.git && git push -q origin HEAD:refs/heads/main",
    }, " && "), { cwd = d }).code)
    return d .. "/work", d .. "/remote.git"
  end

  it("says what relua's primitives would do and does none of it", function()
    local work, remote = sandbox()
    local r = h.relua({ "release.lua", "42", "--dry-run" }, { cwd = work })
    assert.are.equal(0, r.code, r.stderr)
    for _, line in ipairs({
      "[dry-run] would write out.txt",
      "[dry-run] would create folder build/dist",
      "[dry-run] would run: touch made-by-proc",
      "[dry-run] would tag HEAD as v9.9.9",
      "[dry-run] would push v9.9.9 to origin",
      "[dry-run] would send POST http://127.0.0.1:9/upload",
    }) do
      assert.truthy(r.stdout:find(line, 1, true), line .. " missing from:\n" .. r.stdout)
    end
    assert.truthy(r.stdout:find("read\ttrue", 1, true))      -- reading still works
    assert.falsy(r.stdout:find("secret", 1, true))           -- credentials never shown
    assert.is_false(fs.exists(work .. "/out.txt"))
    assert.is_false(fs.exists(work .. "/build"))
    assert.is_false(fs.exists(work .. "/made-by-proc"))
    assert.is_false(fs.exists(work .. "/.relua"))
    assert.are.equal("", h.sh("git tag", { cwd = work }).stdout)
    assert.are.equal("", h.sh("git tag", { cwd = remote }).stdout)
  end)

  it("leaves nothing guarded once the dry run is over", function()
    local d = h.tmpdir()
    local write = fs.write
    local ok, err = dryrun.call(function() end, function()
      assert.are_not.equal(write, fs.write)
      assert.is_true(dryrun.active())
      error("the phase broke")
    end)
    assert.is_false(ok)
    assert.matches("the phase broke", err)
    assert.are.equal(write, fs.write)
    assert.is_false(dryrun.active())
    assert.is_true(fs.write(d .. "/real.txt", "x"))
    assert.are.equal("x", fs.read(d .. "/real.txt"))
  end)

  it("lets reading requests through", function()
    local lines = {}
    local http = require "relua.http"
    local ok, res, msg, code = dryrun.call(function(l) lines[#lines + 1] = l end, function()
      return http.get("http://127.0.0.1:9/", { retry = false, connect_timeout = 2 })
    end)
    assert.is_true(ok)
    assert.is_nil(res)
    assert.are.equal("connect", code, msg)   -- it was really sent (and refused)
    assert.are.same({}, lines)
  end)
end)
