-- relua.forge against tests/support/forge_server.py (GitHub's REST subset, and Gitea's).
local reg = require "support.registries"
local h = require "support.h"
local forge = require "relua.forge"
local fs = require "relua.fs"

local log_level
setup(function() log_level = require("relua.log").level("error") end)
teardown(function() require("relua.log").level(log_level) end)

local function count(log, pattern)
  local n = 0
  for _, l in ipairs(log) do if l:match(pattern) then n = n + 1 end end
  return n
end

describe("relua.forge (GitHub)", function()
  local server, dir, gh

  setup(function()
    server = reg.forge()
    dir = assert(fs.tmpdir("relua-forge-spec-"))
    gh = forge.new({ api = server.api, token = server.token, repo = "acme/lib", tries = 3 })
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("gets or creates a release; a 422 already_exists is resolved by looking; a draft is completed", function()
    local rel, how = gh:release("v1.0.0", { body = "notes" })
    assert.are.equal("created", how)
    assert.are.equal("v1.0.0", rel.tag_name)
    local again, how2 = gh:release("v1.0.0")
    assert.are.equal("existing", how2)
    assert.are.equal(rel.id, again.id)
    -- a draft (invisible by tag): the POST answers 422 already_exists, the list finds it
    local draft = gh:release("v1.1.0", { draft = true, notes = false })
    assert.is_true(draft.draft)
    local done, how3 = gh:release("v1.1.0")
    assert.are.equal("completed", how3)
    assert.are.equal(draft.id, done.id)
    assert.is_false(done.draft)
  end)

  it("a release's notes default to the generated notes of the commits since the last release tag", function()
    local fix = require "support.gitfix"
    local repo = fix.repo(fix.tmpdir() .. "/app")
    fix.git(repo, "tag", "v5.0.0")
    fix.commit(repo, "feat(api): add the widget")
    fix.commit(repo, "fix: stop the leak")
    fix.commit(repo, "docs: reword")
    fix.git(repo, "tag", "v5.1.0")
    fix.commit(repo, "feat!: drop the old flag")
    -- an existing tag: its commit, since the last release before it (not since itself)
    local cli = h.relua({ "version", "notes", "--tag=v5.1.0", "--repo=" .. repo })
    assert.are.equal(0, cli.code, cli.stderr)
    local rel, how = gh:release("v5.1.0", { git = repo })
    assert.are.equal("created", how)
    assert.are.equal(cli.stdout, rel.body)
    assert.matches("^## 5%.1%.0 %(", rel.body)
    assert.matches("### Features\n\n* **api:** add the widget ", rel.body, 1, true)
    assert.matches("### Bug Fixes\n\n* stop the leak ", rel.body, 1, true)
    assert.not_matches("drop the old flag", rel.body, 1, true)
    assert.not_matches("reword", rel.body, 1, true)
    -- stored on the forge as sent
    assert.are.equal(cli.stdout, gh:find_release("v5.1.0").body)
    -- a tag not made yet: HEAD, since v5.1.0; notes options (a link base) pass through
    local next_rel = gh:release("v6.0.0-rc.1", { git = repo, notes = { commit_url = "https://x.test/c/" }, draft = true })
    assert.matches("BREAKING CHANGES\n\n* drop the old flag\n", next_rel.body, 1, true)
    assert.matches("](https://x.test/c/", next_rel.body, 1, true)
    assert.not_matches("widget", next_rel.body, 1, true)
    -- an existing release keeps its notes; a body or notes = false wins over the generator
    assert.are.equal(cli.stdout, gh:release("v5.1.0", { git = repo, body = "other" }).body)
    assert.are.equal("hand-written", gh:release("v5.2.0", { git = repo, body = "hand-written", draft = true }).body)
    -- no repository to read: a clear error before anything is created
    local before = #server.stats().log
    local ok, e = pcall(gh.release, gh, "v7.0.0", { git = dir })
    assert.is_false(ok)
    assert.are.equal("notes", e.code)
    assert.matches("the release notes of v7.0.0", e.message, 1, true)
    assert.matches("notes = false", e.hint, 1, true)
    for i = before + 1, #server.stats().log do assert.not_matches("^POST", server.stats().log[i]) end
    fix.cleanup()
  end)

  it("publishes assets by digest: published, then skipped_existing with no upload; other bytes are immutable", function()
    local rel = gh:release("v2.0.0", { notes = false })
    local a = h.spit(fs.join(dir, "lib-2.0.0.tar.gz"), string.rep("a", 5000))
    local r = gh:assets(rel, { a })
    assert.are.equal("published", r[1].status)
    local before = server.stats().uploads
    assert.are.equal("skipped_existing", gh:assets(rel, { a })[1].status)
    assert.are.equal(before, server.stats().uploads)
    assert(fs.mkdir(fs.join(dir, "other")))
    local b = h.spit(fs.join(dir, "other", "lib-2.0.0.tar.gz"), "different")
    local ok, e = pcall(gh.assets, gh, rel, { b })
    assert.is_false(ok)
    assert.are.equal("immutable", e.code)
    assert.matches(fs.digest(a, "sha256"), e.message, 1, true)
    assert.are.equal(before, server.stats().uploads)
  end)

  it("a connection dropped mid-upload: exactly one asset afterwards", function()
    local rel = gh:release("v3.0.0", { notes = false })
    local a = h.spit(fs.join(dir, "big.bin"), string.rep("x", 300000))
    server.fail({ prefix = "/repos/acme/lib/releases/" .. rel.id .. "/assets", method = "POST",
                  action = "reset_mid_upload", starter = true })
    local r = gh:assets(rel, { a }, { confirm_timeout = 2 })
    assert.are.equal("published", r[1].status)
    local assets = gh:list_assets(rel)
    assert.are.equal(1, #assets)
    assert.are.equal("big.bin", assets[1].name)
    assert.are.equal("sha256:" .. fs.digest(a, "sha256"), assets[1].digest)
  end)

  it("finds or opens a pull request (422 'already exists' resolved by finding it), closes it, finds it closed", function()
    local pr, how = gh:pull_request("release/1.0", "main", { title = "Release 1.0" })
    assert.are.equal("opened", how)
    local pr2, how2 = gh:pull_request("release/1.0", "main")
    assert.are.equal("existing", how2)
    assert.are.equal(pr.number, pr2.number)
    assert.are.equal(pr.number, gh:find_pull_request("release/1.0", "main").number)
    assert.is_nil(gh:find_pull_request("release/1.0", "develop"))
    assert.are.equal("closed", gh:close_pull_request(pr.number).state)
    -- closed: no open one, but state "all" finds it
    assert.is_nil(gh:find_pull_request("release/1.0", "main"))
    assert.are.equal("closed", gh:find_pull_request("release/1.0", "main", "all").state)
  end)

  it("gives one CI verdict from the combined status and the check runs, naming the failing checks", function()
    server.setup({ repo = "acme/lib",
      statuses = { aaa = { { context = "ci/lint", state = "success" } },
                   bbb = { { context = "ci/lint", state = "success" }, { context = "ci/docs", state = "failure" } } },
      check_runs = { aaa = { { name = "test", status = "completed", conclusion = "success" } },
                     bbb = { { name = "test", status = "completed", conclusion = "failure" },
                             { name = "build", status = "in_progress" } },
                     ccc = {} } })
    assert.are.equal("success", gh:ci("aaa").state)
    local v = gh:ci("bbb")
    assert.are.equal("failure", v.state)
    assert.matches("ci/docs (failure)", v.summary, 1, true)
    assert.matches("test (failure)", v.summary, 1, true)
    assert.are.equal("pending", gh:ci("ccc").state)
  end)

  it("deletes a ref through the API (idempotent)", function()
    server.setup({ repo = "acme/lib", refs = { "heads/release/0.9" } })
    assert.are.same({ true, "deleted" }, { gh:delete_ref("heads/release/0.9") })
    assert.are.same({ true, "not there" }, { gh:delete_ref("heads/release/0.9") })
  end)

  it("waits out a primary rate limit until its reset, and a secondary one per Retry-After", function()
    server.fail({ prefix = "/user", kind = "primary_rate", reset_in = 1 })
    assert.are.equal("relua-bot", gh:user().login)
    server.fail({ prefix = "/user", kind = "secondary_rate", retry_after = 1 })
    assert.are.equal("relua-bot", gh:user().login)
    -- a reset too far away: fails at once, with the time
    local impatient = forge.new({ api = server.api, token = server.token, repo = "acme/lib", max_rate_wait = 0 })
    server.fail({ prefix = "/user", kind = "primary_rate", reset_in = 3600 })
    local ok, e = pcall(impatient.user, impatient)
    assert.is_false(ok)
    assert.are.equal("rate_limited", e.code)
    assert.matches("the limit resets at", e.message, 1, true)
  end)

  it("401 Bad credentials is an auth error naming where the token came from, never the token", function()
    local bad = forge.new({ api = server.api, token = "ghp_wrongwrongwrong", repo = "acme/lib" })
    local ok, e = pcall(bad.user, bad)
    assert.is_false(ok)
    assert.are.equal("auth", e.code)
    assert.matches("HTTP 401: Bad credentials", e.message, 1, true)
    assert.not_matches("ghp_wrong", e.message, 1, true)
    server.fail({ prefix = "/repos/acme/lib/releases", kind = "nothing", status = 403 })
    local ok2, e2 = pcall(gh.release, gh, "v9.9.9", { notes = false })
    assert.is_false(ok2)
    assert.are.equal("auth", e2.code)
  end)

  it("takes the token from GITHUB_TOKEN or GH_TOKEN and the API URL from GITHUB_API_URL", function()
    local r = h.relua({ "-e", [[
      local gh = require("relua.forge").new({ repo = "acme/lib" })
      io.write(gh:user().login, " ", gh.source)
    ]] }, { env = { GITHUB_TOKEN = false, GH_TOKEN = server.token, GITHUB_API_URL = server.api } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("relua-bot $GH_TOKEN", r.stdout)
    -- an empty GITHUB_REPOSITORY or GITHUB_API_URL is not set: no repository is a clear error
    local r2 = h.relua({ "-e", [[
      local gh = require("relua.forge").new({ token = "x" })
      io.write(gh.api, "\n")
      local ok, e = pcall(gh.find_release, gh, "v1.0")
      io.write(tostring(ok), " ", tostring(e))
    ]] }, { env = { GITHUB_REPOSITORY = "", GITHUB_API_URL = "" } })
    assert.are.equal(0, r2.code, r2.stderr)
    assert.are.equal("https://api.github.com\nfalse forge: no repository: pass opts.repo (\"owner/name\") or set GITHUB_REPOSITORY",
      r2.stdout)
  end)
end)

describe("relua.forge (Gitea /api/v1)", function()
  local server, dir, gt

  setup(function()
    server = reg.forge({ gitea = true })
    dir = assert(fs.tmpdir("relua-forge-gitea-"))
    gt = forge.new({ api = server.api, token = server.token, repo = "acme/lib" })
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("speaks Gitea: token auth, 409 conflicts, multipart assets without digest (hashed by download)", function()
    assert.are.equal("gitea", gt.kind)
    local rel = gt:release("v1.0.0", { notes = false })
    local draft = gt:release("v1.1.0", { draft = true, notes = false })
    assert.are.equal("completed", select(2, gt:release("v1.1.0")))
    assert.is_true(draft.draft)
    local a = h.spit(fs.join(dir, "lib-1.0.0.zip"), string.rep("z", 1000))
    assert.are.equal("published", gt:assets(rel, { a })[1].status)
    assert.are.equal("skipped_existing", gt:assets(rel, { a })[1].status)
    local _, how = gt:pull_request("release/1.0", "main")
    assert.are.equal("opened", how)
    assert.are.equal("existing", select(2, gt:pull_request("release/1.0", "main")))
    server.setup({ repo = "acme/lib", statuses = { abc = { { context = "ci", state = "success" } } } })
    assert.are.equal("success", gt:ci("abc").state)
    assert.are.equal(1, count(server.stats().log, "^POST /api/v1/repos/acme/lib/releases/%d+/assets 201"))
  end)
end)

describe("relua.forge as a publish target", function()
  local server, dir

  setup(function()
    server = reg.forge()
    dir = assert(fs.tmpdir("relua-forge-target-"))
  end)

  teardown(function()
    if server then server.stop() end
    if dir then fs.remove(dir, { recursive = true }) end
  end)

  it("publishes a release's assets as a target: looking creates nothing, a re-run sends nothing", function()
    local a = h.spit(fs.join(dir, "tool-1.0.tar.gz"), string.rep("t", 2000))
    local script = h.spit(fs.join(dir, "t.lua"), [[
      local targets = require "relua.publish.targets"
      local T = { { name = "github", role = "primary", adapter = "forge", artifacts = { arg[1] },
        opts = { api = arg[2], repo = "acme/tool", tag = "v1.0", confirm_timeout = 2, release_opts = { notes = false } },
        secrets = { token = "ACME_FORGE_TOKEN" } } }
      for _ = 1, 2 do
        local rec = targets.publish(nil, T)
        io.stderr:write("status=", rec.github.results["tool-1.0.tar.gz"].status, "\n")
      end
    ]])
    local r = h.relua({ script, a, server.api }, { env = { ACME_FORGE_TOKEN = server.token, RELUA_LOG_LEVEL = "warn" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("status=published\nstatus=skipped_existing\n", r.stderr, 1, true)
    assert.matches("github%s+primary%s+tool%-1%.0%.tar%.gz%s+skipped_existing", r.stdout)
    assert.are.equal(1, server.stats().uploads)
    assert.not_matches(server.token, r.stdout .. r.stderr, 1, true)
  end)
end)
