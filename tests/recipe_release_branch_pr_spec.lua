-- recipes/release-branch-pr.lua end to end, as shipped, against real servers on 127.0.0.1
-- (one set for the whole file): git over smart HTTP (lighttpd), the PyPI test index and the
-- test forge. Each scenario gets its own project (tests/support/branchpr.lua), built for
-- real (python3 -m build with flit). Uploads and pull requests are counted on the servers'
-- side: a re-run never publishes anything twice.
local B = require "support.branchpr"
local gitfix = require "support.gitfix"

local DOWN = "http://127.0.0.1:9/legacy/"  -- nothing listens there: the index is down

local W = require "support.pypinpm"
local ok, failed, phases, diagnosed, recovered = W.ok, W.failed, W.phases, W.diagnosed, W.recovered

-- the whole release is out once: the version's two files uploaded, one forge release, one
-- pull request opened, the branch and the tag at the version commit
local function released(p, ticket, u0, v, refused)
  v = v or "1.0.1"
  local st = p.state(ticket)
  assert.are.equal(v, st.VERSION)
  assert.are.equal(2 + (refused or 0), p.uploads() - u0)
  assert.are.equal(2, #p.pypi_files())
  assert.are.same({ "v" .. v }, p.releases())
  local pulls = p.pulls()
  assert.are.equal(1, #pulls)
  assert.are.same({ "release/pypi-v" .. v, "main", "open" }, { pulls[1].head, pulls[1].base, pulls[1].state })
  assert.are.equal(1, p.pull_posts())
  assert.are.equal(st.BUMP_SHA, p.tag_commit("v" .. v))
  assert.are.equal(st.BUMP_SHA, p.branch_tip("release/pypi-v" .. v))
  assert.are.equal(st.BASE_SHA, gitfix.git(p.dir, "rev-parse", st.BUMP_SHA .. "^"))
end

local function pyproject_at(p, v)
  return (gitfix.git(p.dir, "show", "HEAD:pyproject.toml") .. "\n"):gsub('\nversion = "[^"]*"', '\nversion = "' .. v .. '"')
end

describe("recipes/release-branch-pr.lua", function()
  local S

  setup(function() S = B.servers() end)
  teardown(function() if S then S.stop() end end)

  -- the forge refuses to create the release: the run fails in github-release, PyPI has it all
  local function without_forge_release(p, ticket)
    S.forge.fail({ prefix = "/repos/" .. p.repo .. "/releases", method = "POST", status = 403 })
    local r = p.release(ticket)
    failed(r)
    assert.matches("phase github-release failed", r.stderr, 1, true)
  end

  it("a clean release: pre-flight, branch, version commit, tag, PyPI, forge release, pull request, verified; a re-run does nothing", function()
    local p = B.project(S)
    local u0 = p.uploads()
    local r = p.release("42")
    ok(r)
    local out = r.stdout .. r.stderr
    for _, secret in ipairs({ S.pypi.password, S.forge.token, S.git.password }) do
      assert.is_nil(out:find(secret, 1, true))
    end
    assert.matches("[pass] tokens set: PYPI_API_TOKEN, GITHUB_TOKEN", out, 1, true)
    assert.matches("[pass] CI green on the forge", out, 1, true)
    assert.matches("release/pypi-v1.0.1 from origin/main", out, 1, true)
    assert.matches("pull request #1 release/pypi-v1.0.1 -> main: opened", out, 1, true)
    assert.matches("[verify-release] ok: PyPI has every file of 1.0.1, identical to the build", out, 1, true)
    assert.matches("release 42 done: all 8 phases done", out, 1, true)
    released(p, "42", u0)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.same({ "release/pypi-v1.0.1" }, p.branches())
    assert.are.equal("1.0.0+dev", p.main_version())  -- main gets 1.0.1 when the pull request is merged
    assert.are.equal("Release 1.0.1 to PyPI", p.pulls()[1].title)
    local again = p.release("42")
    ok(again)
    assert.matches("nothing to do", again.stdout, 1, true)
    -- --from=release-tag on the finished ticket: the tag continued, the build identical and skipped,
    -- the release and the pull request found
    local from = p.run({ B.RECIPE, "42", "--from=release-tag" })
    ok(from)
    assert.matches("the tag v1.0.1 is on origin at the version commit", from.stdout, 1, true)
    assert.matches("forge release v1.0.1: existing", from.stdout, 1, true)
    assert.matches("pull request #1 release/pypi-v1.0.1 -> main: existing", from.stdout, 1, true)
    released(p, "42", u0)
    -- a new ticket cuts the next version (the released branch, tagged, is no orphan)
    local next = p.release("43")
    ok(next)
    assert.matches("[pass] no orphaned release branch", next.stdout, 1, true)
    assert.are.equal("1.0.2", p.state("43").VERSION)
    assert.are.same({ "v1.0.0", "v1.0.1", "v1.0.2" }, p.remote_tags())
    assert.are.same({ "release/pypi-v1.0.1", "release/pypi-v1.0.2" }, p.branches())
    assert.are.equal(4, p.uploads() - u0)
    assert.are.equal(2, #p.pulls())
  end)

  it("--dry-run says what would happen and changes nothing", function()
    local p = B.project(S)
    local u0 = p.uploads()
    local r = p.run({ B.RECIPE, "9", "--dry-run" })
    ok(r)
    assert.matches("would push release/pypi-v1.0.1 to origin (created)", r.stdout, 1, true)
    assert.matches("would commit chore(release): 1.0.1", r.stdout, 1, true)
    assert.matches("would tag it v1.0.1 and push the tag", r.stdout, 1, true)
    assert.matches("would open the pull request release/pypi-v1.0.1 -> main", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("stopped early", 1, true))
    assert.is_nil(io.open(p.home .. "/releases/9.json"))
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.same({}, p.branches())
    assert.are.equal(0, p.uploads() - u0)
    assert.are.equal(0, #p.pulls())
    assert.are.equal("", gitfix.git(p.dir, "status", "--porcelain"))
  end)

  it("pre-flight fails closed: a missing token (named, never shown), a dirty tree, CI red, an orphaned release branch", function()
    local p = B.project(S)
    local r = p.release("1", { PYPI_API_TOKEN = false })
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    assert.matches("[FAIL] tokens set: not set: PYPI_API_TOKEN", r.stdout .. r.stderr, 1, true)
    assert.is_nil((r.stdout .. r.stderr):find(S.forge.token, 1, true))
    p.ci("failure")
    gitfix.write(p.dir, "README", "local change\n")
    gitfix.git(p.dir, "add", "README")
    p.push_branch("release/pypi-v0.9.0", { { "feat: an abandoned release", "x.py", "X = 1\n" } })
    r = p.release("1")
    assert.are.equal(2, r.code, r.stdout .. r.stderr)
    local out = r.stdout .. r.stderr
    assert.matches("[FAIL] working tree clean", out, 1, true)
    assert.matches("[FAIL] CI green on the forge", out, 1, true)
    assert.matches("[FAIL] no orphaned release branch: release/pypi-v0.9.0 on origin", out, 1, true)
    assert.matches("nothing was run", out, 1, true)
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.same({ "release/pypi-v0.9.0" }, p.branches())
    assert.are.equal(0, #p.pypi_files())
  end)

  it("bad settings are refused by pre-flight, naming the variable; nothing runs", function()
    local p = B.project(S)
    for _, case in ipairs({
      { { BRANCH_PR_VERSION = "banana" }, "[FAIL] release settings: BRANCH_PR_VERSION 'banana' is not a SemVer version" },
      { { BRANCH_PR_BUMP = "huge" }, "[FAIL] release settings: BRANCH_PR_BUMP 'huge' is not patch, minor or major" },
      { { BRANCH_PR_FORGE_REPO = false, GITHUB_REPOSITORY = false },
        "[FAIL] release settings: BRANCH_PR_FORGE_REPO (or GITHUB_REPOSITORY) is not set: set it to owner/name" },
    }) do
      local r = p.release("2", case[1])
      assert.are.equal(2, r.code, r.stdout .. r.stderr)
      assert.matches(case[2], r.stdout .. r.stderr, 1, true)
      assert.matches("nothing was run", r.stderr, 1, true)
    end
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.same({}, p.branches())
    local good = p.release("2")
    ok(good)
    assert.matches("[pass] release settings: version 1.0.1 (bump patch), branch release/pypi-v1.0.1, tag v1.0.1, forge " .. p.repo,
      good.stdout, 1, true)
  end)

  -- a failure injected at each phase; the cause fixed, a plain re-run completes and
  -- nothing is published twice
  local faults = {
    { phase = "release-branch", why = "protected: refs/heads/release/pypi-v1.0.1 may not be pushed",
      inject = function(p) p.protect("refs/heads/release/*") end, fix = function(p) p.unprotect() end },
    { phase = "version-bump", why = "nope.py",
      env = { BRANCH_PR_VERSION_FILES = "nope.py" } },
    { phase = "release-tag", why = "protected: refs/tags/v1.0.1 may not be pushed",
      inject = function(p) p.protect("refs/tags/*") end, fix = function(p) p.unprotect() end },
    { phase = "dist", why = "command exited with 3", env = { BRANCH_PR_BUILD = "exit 3" } },
    { phase = "pypi-upload", why = "HTTP 400", uploads = 1,
      inject = function() S.pypi.fail({ status = 400, count = 1, prefix = "/legacy/" }) end },
    { phase = "github-release", why = "HTTP 403",
      inject = function(p) S.forge.fail({ prefix = "/repos/" .. p.repo .. "/releases", method = "POST", status = 403 }) end },
    { phase = "pull-request", why = "HTTP 403",
      inject = function(p) S.forge.fail({ prefix = "/repos/" .. p.repo .. "/pulls", method = "POST", status = 403 }) end },
    -- the post-release check of the pull request (any state) refused once
    { phase = "verify-release", why = "the forge could not be read for the pull request from release/pypi-v1.0.1 into main",
      inject = function(p)
        S.forge.fail({ prefix = "/repos/" .. p.repo .. "/pulls", method = "GET", query = "state=all", status = 403 })
      end },
  }
  for i, f in ipairs(faults) do
    it("fails in phase " .. f.phase .. "; once fixed, a re-run completes and publishes nothing twice", function()
      local p = B.project(S)
      local u0 = p.uploads()
      if f.inject then f.inject(p) end
      local r = p.release(tostring(100 + i), f.env)
      failed(r)
      assert.matches("phase " .. f.phase .. " failed", r.stderr, 1, true)
      assert.matches(f.why, r.stdout .. r.stderr, 1, true)
      assert.are.equal("failed", phases(p, tostring(100 + i))[f.phase])
      if f.fix then f.fix(p) end
      ok(p.release(tostring(100 + i)))
      released(p, tostring(100 + i), u0, nil, f.uploads)
    end)
  end

  it("--from after a fixed cause: the build broke after the tag; --from=release-tag continues the tag at the version commit", function()
    local p = B.project(S)
    local u0 = p.uploads()
    failed(p.release("5", { BRANCH_PR_BUILD = "exit 3" }))
    local st = p.state("5")
    assert.are.equal(st.BUMP_SHA, p.tag_commit("v1.0.1"))
    local r = p.run({ B.RECIPE, "5", "--from=release-tag" })
    ok(r)
    assert.matches("the tag v1.0.1 is on origin at the version commit " .. st.BUMP_SHA:sub(1, 12) .. ": continuing", r.stdout, 1, true)
    released(p, "5", u0)
  end)

  it("a tag pushed by a run that died: the re-run continues it at the version commit and completes", function()
    local p = B.project(S)
    local u0 = p.uploads()
    -- killed when the release-tag phase had pushed the tag, before the phase was recorded done
    local r = p.release("8", { RELUA_TEST_CRASH_AT = "phase-end:3" })
    assert.are.equal(137, r.code, r.stdout .. r.stderr)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    local again = p.release("8")
    ok(again)
    assert.matches("the tag v1.0.1 is on origin at the version commit " .. p.state("8").BUMP_SHA:sub(1, 12) .. ": continuing",
      again.stdout, 1, true)
    released(p, "8", u0)
  end)

  it("revert before PyPI deletes the tag and the branch; a re-run cuts the same version again", function()
    local p = B.project(S)
    local u0 = p.uploads()
    failed(p.release("6", { BRANCH_PR_BUILD = "exit 3" }))
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.same({ "release/pypi-v1.0.1" }, p.branches())
    local rv = p.run({ "revert", "6" })
    ok(rv)
    assert.matches("delete the tag v1.0.1 on origin", rv.stdout, 1, true)
    assert.matches("delete the branch release/pypi-v1.0.1 on origin", rv.stdout, 1, true)
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.same({}, p.branches())
    assert.are.equal("main", gitfix.git(p.dir, "rev-parse", "--abbrev-ref", "HEAD"))
    ok(p.release("6"))
    released(p, "6", u0)
  end)

  it("revert past the point of no return (the wheel on PyPI, the sdist refused) is refused; nothing is deleted", function()
    local p = B.project(S)
    S.pypi.fail({ status = 400, count = 1, prefix = "/legacy/", skip = 1 })
    failed(p.release("7"))
    local rv = p.run({ "revert", "7" })
    assert.are.equal(3, rv.code, rv.stdout .. rv.stderr)
    assert.matches("point of no return", rv.stdout .. rv.stderr, 1, true)
    assert.are.same({ "v1.0.0", "v1.0.1" }, p.remote_tags())
    assert.are.same({ "release/pypi-v1.0.1" }, p.branches())
  end)

  it("scenario A, an orphan: the branch holds nothing main lacks but a version bump; recover deletes it and releases", function()
    local p = B.project(S)
    local orphan = p.push_branch("release/pypi-v1.0.1", { { "chore(release): 1.0.1", "pyproject.toml", pyproject_at(p, "1.0.1") } })
    local u0 = p.uploads()
    local r = p.release("20")
    failed(r)
    assert.matches("a branch named 'release/pypi-v1.0.1' already exists on origin", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  release-branch-pr-branch-exists", r.stderr, 1, true)
    assert.are.equal(orphan, p.branch_tip("release/pypi-v1.0.1"))
    local diag = diagnosed(p, "20", "release-branch-pr-branch-exists")
    assert.matches("an orphan: 1 commit(s) main lacks, none but a version bump", diag, 1, true)
    local rec = recovered(p, "20", "release-branch-pr-branch-exists")
    assert.matches("orphan branch release/pypi-v1.0.1 deleted", rec.stdout, 1, true)
    released(p, "20", u0)
    assert.are_not.equal(orphan, p.branch_tip("release/pypi-v1.0.1"))
  end)

  it("scenario A, real work: the branch holds a commit main lacks; it is kept and shown, nothing is released", function()
    local p = B.project(S)
    local work = p.push_branch("release/pypi-v1.0.1", { { "feat: a hotfix only on the branch", "src/hotfix.py", "HOT = 1\n" } })
    local u0 = p.uploads()
    failed(p.release("21"))
    local diag = diagnosed(p, "21", "release-branch-pr-branch-exists")
    assert.matches("holds real work main lacks: " .. work:sub(1, 12) .. " feat: a hotfix only on the branch", diag, 1, true)
    local rec = p.run({ "recover", "21", "--yes" })
    failed(rec)
    assert.matches("It is kept: nothing was deleted", rec.stdout .. rec.stderr, 1, true)
    assert.matches("git log main..origin/release/pypi-v1.0.1", rec.stdout .. rec.stderr, 1, true)
    assert.are.equal(work, p.branch_tip("release/pypi-v1.0.1"))
    assert.are.equal("failed", phases(p, "21")["release-branch"])
    assert.are.same({ "v1.0.0" }, p.remote_tags())
    assert.are.equal(0, p.uploads() - u0)
  end)

  it("scenario B: the tag at another commit stops and explains; once the wrong tag is deleted, recover continues", function()
    local p = B.project(S, { env = { BRANCH_PR_VERSION = "1.0.1" } })
    local main = p.head()
    gitfix.git(p.dir, "tag", "-a", "-m", "tagged by hand", "v1.0.1", main)
    gitfix.git(p.dir, "push", "-q", p.authed, "v1.0.1")
    gitfix.git(p.dir, "tag", "-d", "v1.0.1")
    local u0 = p.uploads()
    local r = p.release("30")
    failed(r)
    assert.matches("the tag 'v1.0.1' already exists on origin at " .. main:sub(1, 12), r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  release-branch-pr-tag-exists", r.stderr, 1, true)
    diagnosed(p, "30", "release-branch-pr-tag-exists")
    local early = p.run({ "recover", "30", "--yes" })
    failed(early)
    local said = early.stdout .. early.stderr
    assert.matches("relua never moves a tag", said, 1, true)
    assert.matches("git push origin --delete tag v1.0.1", said, 1, true)
    assert.are.equal(main, p.tag_commit("v1.0.1"))
    assert.are.equal(0, p.uploads() - u0)
    gitfix.git(p.dir, "push", "-q", p.authed, ":refs/tags/v1.0.1")
    recovered(p, "30", "release-branch-pr-tag-exists")
    released(p, "30", u0)
  end)

  it("scenario C: the version burned with other content: 'bump the version', the index unchanged; recover releases the next", function()
    local p = B.project(S)
    p.publish_by_hand("1.0.1")
    local u0 = p.uploads()
    local before = p.pypi_files()
    local r = p.release("40")
    failed(r)
    assert.matches("phase pypi-upload failed", r.stderr, 1, true)
    assert.matches("bump the version", r.stdout .. r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  release-branch-pr-bump", r.stderr, 1, true)
    assert.are.equal(0, p.uploads() - u0)
    assert.are.same(before, p.pypi_files())
    diagnosed(p, "40", "release-branch-pr-bump")
    local rec = recovered(p, "40", "release-branch-pr-bump")
    assert.matches("the ticket now releases 1.0.2 (1.0.1 is burned on PyPI)", rec.stdout, 1, true)
    local st = p.state("40")
    assert.are.equal("1.0.2", st.VERSION)
    assert.are.equal("1.0.1", st.BURNED[1].version)
    assert.are.same({ "v1.0.0", "v1.0.2" }, p.remote_tags())  -- its own v1.0.1 taken back
    assert.are.same({ "release/pypi-v1.0.2" }, p.branches())
    assert.are.equal(2, p.uploads() - u0)
    assert.are.equal(4, #p.pypi_files())
    assert.are.same({ "v1.0.2" }, p.releases())
    assert.are.equal(1, #p.pulls())
  end)

  it("scenario D: the pull request failed; opened by hand meanwhile, recover finds it and opens none", function()
    local p = B.project(S)
    S.forge.fail({ prefix = "/repos/" .. p.repo .. "/pulls", method = "POST", status = 403 })
    local u0 = p.uploads()
    local r = p.release("50")
    failed(r)
    assert.matches("phase pull-request failed", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  release-branch-pr-pr-failed", r.stderr, 1, true)
    assert.are.equal(0, #p.pulls())
    local diag = diagnosed(p, "50", "release-branch-pr-pr-failed")
    assert.matches("tag: yes, PyPI: identical, release: yes, PR: no", diag, 1, true)
    -- gh pr create, by hand
    local c = require("relua.forge").new({ api = S.forge.api, repo = p.repo, token = S.forge.token })
    c:pull_request("release/pypi-v1.0.1", "main", { title = "Release 1.0.1 (by hand)" })
    local rec = recovered(p, "50", "release-branch-pr-pr-failed")
    assert.matches("pull request #1 from release/pypi-v1.0.1 into main is already open", rec.stdout, 1, true)
    assert.matches("pull request #1 release/pypi-v1.0.1 -> main: existing", rec.stdout, 1, true)
    assert.are.equal(1, #p.pulls())
    assert.are.equal(2, p.uploads() - u0)
  end)

  it("scenario D: the pull request failed; recover opens it once", function()
    local p = B.project(S)
    S.forge.fail({ prefix = "/repos/" .. p.repo .. "/pulls", method = "POST", status = 403 })
    local u0 = p.uploads()
    failed(p.release("51"))
    diagnosed(p, "51", "release-branch-pr-pr-failed")
    local rec = recovered(p, "51", "release-branch-pr-pr-failed")
    assert.matches("no pull request from release/pypi-v1.0.1 into main yet: the re-run opens it", rec.stdout, 1, true)
    released(p, "51", u0)
  end)

  it("scenario D: the pull request failed and the branch was deleted; recover pushes it back and opens the pull request", function()
    local p = B.project(S)
    S.forge.fail({ prefix = "/repos/" .. p.repo .. "/pulls", method = "POST", status = 403 })
    local u0 = p.uploads()
    failed(p.release("52"))
    gitfix.git(p.dir, "push", "-q", p.authed, ":refs/heads/release/pypi-v1.0.1")  -- deleted by hand
    assert.is_nil(p.branch_tip("release/pypi-v1.0.1"))
    local rec = recovered(p, "52", "release-branch-pr-pr-failed")
    assert.matches("push release/pypi-v1.0.1 to origin (back, at the release commit)", rec.stdout, 1, true)
    released(p, "52", u0)
  end)

  it("scenario E, with a ledger: PyPI half published (the sdist refused); recover works out what exists and uploads only the rest", function()
    local p = B.project(S)
    local u0 = p.uploads()
    S.pypi.fail({ status = 400, count = 1, prefix = "/legacy/", skip = 1 })
    local r = p.release("60")
    failed(r)
    assert.matches("phase pypi-upload failed", r.stderr, 1, true)
    assert.matches("Matching playbooks:\n  release-branch-pr-partial", r.stderr, 1, true)
    assert.are.equal(1, #p.pypi_files())
    local diag = diagnosed(p, "60", "release-branch-pr-partial")
    assert.matches("tag: yes, PyPI: partial, release: no, PR: no; " ..
      "to do: publish to PyPI (partial), create the forge release, open the pull request", diag, 1, true)
    -- the index down: the verify fails, nothing is resumed, the ticket stays failed
    local early = p.run({ "recover", "60", "--yes" }, { BRANCH_PR_PYPI_URL = DOWN })
    failed(early)
    assert.matches("PyPI: unknown", early.stdout .. early.stderr, 1, true)
    assert.are.equal("failed", phases(p, "60")["pypi-upload"])
    recovered(p, "60", "release-branch-pr-partial")
    -- three uploads in all: the wheel, the refused sdist, the sdist again; never the wheel twice
    released(p, "60", u0, nil, 1)
  end)

  it("scenario E, with a ledger: published, no forge release; recover makes the release and the pull request only", function()
    local p = B.project(S)
    local u0 = p.uploads()
    without_forge_release(p, "61")
    local diag = diagnosed(p, "61", "release-branch-pr-partial")
    assert.matches("tag: yes, PyPI: identical, release: no, PR: no; to do: create the forge release, open the pull request", diag, 1, true)
    recovered(p, "61", "release-branch-pr-partial")
    released(p, "61", u0)
  end)

  it("scenario E, without a ledger (and C, identical): another runner retrying the version adopts the branch at the tag, " ..
    "finds the files on PyPI identical (skipped_existing) and does only what is missing", function()
    local p = B.project(S)
    local u0 = p.uploads()
    without_forge_release(p, "62")
    local r = p.release("62-elsewhere", { RELUA_HOME = p.home .. "-elsewhere", BRANCH_PR_VERSION = "1.0.1" })
    ok(r)
    assert.matches("release/pypi-v1.0.1 on origin is at the tag v1.0.1", r.stdout, 1, true)
    assert.matches("an earlier run's release, adopted", r.stdout, 1, true)
    assert.matches("forge release v1.0.1: created", r.stdout, 1, true)
    assert.matches("pull request #1 release/pypi-v1.0.1 -> main: opened", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("%s published%s"))
    local _, skipped = r.stdout:gsub("skipped_existing", "")
    assert.are.equal(2, skipped)
    assert.are.equal(2, p.uploads() - u0)
    assert.are.same({ "v1.0.1" }, p.releases())
    assert.are.equal(1, #p.pulls())
  end)
end)
