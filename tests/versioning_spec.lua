-- relua.conventional, relua.versioning and `relua version ...`: the next version and the
-- release notes of real repositories built with the git CLI (relua reads them through
-- libgit2), plus the commit_tree and pack_refs primitives they and the bench use.
local git = require "relua.git"
local json = require "relua.json"
local conventional = require "relua.conventional"
local versioning = require "relua.versioning"
local fix = require "support.gitfix"
local h = require "support.h"

local G = fix.git

-- A repository with a release tag v1.2.3 and then the given commit messages.
local function history(messages, opts)
  opts = opts or {}
  local dir = fix.repo(fix.tmpdir() .. "/app")
  if opts.tag ~= false then G(dir, "tag", opts.tag or "v1.2.3") end
  local ids = {}
  for i, m in ipairs(messages) do ids[i] = fix.commit(dir, m) end
  return dir, ids
end

local function next_of(dir, opts)
  return assert(versioning.next(dir, opts))
end

describe("relua.conventional", function()
  it("parses headers, scopes, `!`, footers and reverts", function()
    local c = conventional.parse("feat(api)!: drop v1\n\nBody text.\n\nRefs: #12\n")
    assert.are.same({ "feat", "api", "drop v1", true }, { c.type, c.scope, c.subject, c.breaking })
    assert.are.same({ "drop v1" }, c.notes)
    c = conventional.parse("Fix: lower case type\n\nBREAKING CHANGE: the flag is gone\n  and so is the other\nReviewed-by: X\n")
    assert.are.equal("fix", c.type)
    assert.is_true(c.breaking)
    assert.are.same({ "the flag is gone\n  and so is the other" }, c.notes)
    c = conventional.parse("chore: x\n\nBREAKING-CHANGE: hyphenated")
    assert.are.same({ "hyphenated" }, c.notes)
    assert.is_false(conventional.parse("fix: x\n\nbreaking change: lower case is not a footer").breaking)
    assert.is_nil(conventional.parse("Update the docs"))
    assert.is_nil(conventional.parse("feat:no space"))
    assert.is_nil(conventional.parse("Merge branch 'topic'"))
    c = conventional.parse('Revert "feat: thing"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.\n')
    assert.are.equal("revert", c.type)
    assert.are.same({ header = "feat: thing", id = "0123456789abcdef0123456789abcdef01234567" }, c.reverts)
  end)

  it("takes the highest level; a revert of a commit in the same range drops both", function()
    assert.are.equal("patch", conventional.analyze({ "fix: a", "docs: b", "perf: c" }).bump)
    assert.are.equal("minor", conventional.analyze({ "fix: a", "feat: b" }).bump)
    assert.are.equal("major", conventional.analyze({ "feat: a", "refactor!: b" }).bump)
    assert.is_nil(conventional.analyze({ "docs: a", "chore: b", "whatever" }).bump)
    local a = conventional.analyze({
      { id = "r1", message = 'Revert "feat: b"\n\nThis reverts commit f1.\n' },
      { id = "f1", message = "feat: b" },
      { id = "x1", message = "fix: c" },
    })
    assert.are.equal("patch", a.bump)
    assert.are.equal(1, #a.commits)
    assert.are.equal("minor", conventional.analyze({ "feat: a" }, { rules = { feat = "minor" } }).bump)
    assert.is_nil(conventional.analyze({ "fix: a" }, { rules = { feat = "minor" } }).bump)
  end)
end)

describe("relua.versioning", function()
  after_each(fix.cleanup)

  it("computes the next version from the commits since the last tag", function()
    local dir = history({ "docs: words", "fix: repair the parser" })
    local r = next_of(dir)
    assert.are.same({ "1.2.4", "v1.2.4", "patch", "v1.2.3", 2 }, { r.version, r.tag, r.bump, r.last.tag, r.count })
    assert.are.equal(G(dir, "rev-parse", "v1.2.3"), r.last.commit)
    assert.are.equal(G(dir, "rev-parse", "HEAD"), r.head)
    fix.commit(dir, "feat(cli): add --json")
    assert.are.same({ "1.3.0", "minor" }, { next_of(dir).version, next_of(dir).bump })
    fix.commit(dir, "perf: faster\n\nBREAKING CHANGE: needs Lua 5.4")
    assert.are.same({ "2.0.0", "major" }, { next_of(dir).version, next_of(dir).bump })
    -- an explicit bump wins over the commits
    assert.are.equal("1.2.4", next_of(dir, { bump = "patch" }).version)
    assert.are.equal("2.0.0", next_of(dir, { bump = "major" }).version)
  end)

  it("applies the pre-1.0 rule when asked: a breaking change bumps the minor while the major is 0", function()
    local dir = history({ "feat!: new config format" }, { tag = "v0.4.1" })
    assert.are.equal("1.0.0", next_of(dir).version)
    assert.are.same({ "0.5.0", "minor" }, { next_of(dir, { pre_major = true }).version, next_of(dir, { pre_major = true }).bump })
    local dir2 = history({ "feat!: new config format" }, { tag = "v1.4.1" })
    assert.are.equal("2.0.0", next_of(dir2, { pre_major = true }).version)
  end)

  it("has nothing to release when no commit calls for it; starts at 1.0.0 without a tag", function()
    local dir = history({ "docs: a", "chore(deps): b", "Update README" })
    local r = next_of(dir)
    assert.is_nil(r.version)
    assert.is_nil(r.notes)
    assert.are.equal(3, r.count)
    assert.are.equal("1.2.4", next_of(dir, { bump = "patch" }).version)
    local fresh = history({ "fix: first" }, { tag = false })
    r = next_of(fresh)
    assert.are.same({ "1.0.0", "v1.0.0" }, { r.version, r.tag })
    assert.is_nil(r.last)
    assert.are.equal(2, r.count)  -- the initial commit and the fix
    assert.are.equal("0.1.0", next_of(fresh, { initial = "0.1.0" }).version)
  end)

  it("takes the highest release tag merged into HEAD: not a higher one elsewhere, not a pre-release", function()
    local dir = history({ "fix: one" })
    G(dir, "tag", "v1.3.0-rc.1")            -- a pre-release on main: not a release
    G(dir, "tag", "release-9.0.0")          -- another prefix
    G(dir, "tag", "v9.01.0")                -- a leading zero: not SemVer
    G(dir, "tag", "v09.1.0")
    G(dir, "tag", "v8.1.00")
    G(dir, "checkout", "-q", "-b", "maint")
    fix.commit(dir, "fix: on a branch")
    G(dir, "tag", "v5.0.0")                 -- higher, not merged into main
    G(dir, "tag", "v5.0.1")
    G(dir, "checkout", "-q", "main")
    fix.commit(dir, "feat: two")
    G(dir, "tag", "v1.2.10", "HEAD~1")       -- higher than v1.2.3 by number, older than HEAD
    local last = versioning.last_release(dir)
    assert.are.equal("v1.2.10", last.tag)
    assert.are.equal("1.3.0", next_of(dir).version)
    assert.are.equal(1, next_of(dir).count)
    assert.are.equal("v1.3.0-rc.1", versioning.last_release(dir, { prereleases = true }).tag)
    assert.are.equal("v5.0.1", versioning.last_release(dir, { from = "maint" }).tag)
    assert.are.equal("release-9.0.0", versioning.last_release(dir, { prefix = "release-" }).tag)
    assert.is_nil(versioning.last_release(dir, { prefix = "nope-" }))
    -- many unmerged higher tags: the sorted path gives the same answer
    G(dir, "checkout", "-q", "maint")
    for i = 2, 12 do G(dir, "tag", "v5." .. i .. ".0") end
    G(dir, "checkout", "-q", "main")
    assert.are.equal("v1.2.10", versioning.last_release(dir).tag)
  end)

  it("writes release notes grouped by type with links, as semantic-release's conventionalcommits preset", function()
    local dir, ids = history({
      "fix: Repair B", "feat(api): add the thing", "fix: repair a", "docs: words",
      "perf(walk): lazy\n\nBREAKING CHANGE: walk() returns an iterator", "chore(deps)!: bump all",
    })
    local r = next_of(dir, { commit_url = "https://git.example.test/o/r/commit/", date = "2026-01-02" })
    local function link(i) return string.format("([%s](https://git.example.test/o/r/commit/%s))", ids[i]:sub(1, 7), ids[i]) end
    assert.are.equal(table.concat({
      "## 2.0.0 (2026-01-02)",
      "",
      "### ⚠ BREAKING CHANGES",
      "",
      "* **deps:** bump all",
      "* **walk:** walk() returns an iterator",
      "",
      "### Features",
      "",
      "* **api:** add the thing " .. link(2),
      "",
      "### Bug Fixes",
      "",
      "* repair a " .. link(3),
      "* Repair B " .. link(1),
      "",
      "### Performance Improvements",
      "",
      "* **walk:** lazy " .. link(5),
      "",
      "### Miscellaneous Chores",
      "",
      "* **deps:** bump all " .. link(6),
      "",
    }, "\n"), r.notes)
    r = next_of(dir, { compare_url = "https://x.test/compare/{from}...{to}", date = "2026-01-02" })
    assert.are.equal("## [2.0.0](https://x.test/compare/v1.2.3...v2.0.0) (2026-01-02)\n", r.notes:match("^[^\n]*\n"))
    assert.truthy(r.notes:find("* **api:** add the thing " .. ids[2]:sub(1, 7) .. "\n", 1, true))
  end)

  it("reports a bad repository or revision as nil, message, code", function()
    local d = fix.tmpdir()
    local r, msg = versioning.next(d)
    assert.is_nil(r)
    assert.truthy(msg:find("not a git repository", 1, true), msg)
    local dir = history({ "fix: x" })
    r, msg = versioning.next(dir, { from = "nope" })
    assert.is_nil(r)
    assert.truthy(msg:find("nope", 1, true), msg)
    assert.has_error(function() versioning.next(dir, { bump = "huge" }) end)
  end)
end)

describe("relua version (command line)", function()
  after_each(function() fix.cleanup(); h.cleanup() end)

  it("prints the next version, its notes, the last tag, or JSON", function()
    local dir = history({ "feat: one", "fix(x): two" })
    local r = h.relua({ "version", "next" }, { cwd = dir })
    assert.are.same({ 0, "1.3.0\n", "" }, { r.code, r.stdout, r.stderr })
    r = h.relua({ "version", "next", "--json", "--commit-url=https://h.test/c/" }, { cwd = dir })
    assert.are.equal(0, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.are.same({ "1.3.0", "v1.3.0", "minor", "v1.2.3", 2 }, { doc.version, doc.tag, doc.bump, doc.last.tag, doc.commits })
    assert.are.same({ "fix", "x", "two" }, { doc.changes[1].type, doc.changes[1].scope, doc.changes[1].subject })
    assert.truthy(doc.notes:find("### Features\n\n* one ([", 1, true))
    r = h.relua({ "version", "notes", "--repo=" .. dir, "--bump=major" })
    assert.are.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("^## 2%.0%.0 %(%d+%-%d+%-%d+%)\n"))
    assert.are.same({ 0, "v1.2.3\n" }, { h.relua({ "version", "last" }, { cwd = dir }).code,
                                         h.relua({ "version", "last" }, { cwd = dir }).stdout })
  end)

  it("--tag: the notes of a release since the last one before it; a tag that is not a version is refused", function()
    local dir = history({ "feat: one" }, { tag = "v1.0.0" })
    G(dir, "tag", "v1.1.0")
    fix.commit(dir, "fix: two")
    G(dir, "tag", "v1.1.1")
    local r = h.relua({ "version", "notes", "--tag=v1.1.0", "--date=2026-01-02" }, { cwd = dir })
    assert.are.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("^## 1%.1%.0 %(2026%-01%-02%)\n\n### Features\n\n%* one %x+\n$"), r.stdout)
    r = h.relua({ "version", "notes", "--tag=v1.2.0", "--compare-url={from}..{to}" }, { cwd = dir })
    assert.truthy(r.stdout:find("^## %[1%.2%.0%]%(v1%.1%.1%.%.v1%.2%.0%)"), r.stdout)
    assert.is_nil(r.stdout:find("one", 1, true))
    r = h.relua({ "version", "notes", "--tag=latest" }, { cwd = dir })
    assert.are.equal(2, r.code)
    assert.matches("tag 'latest' is not '' followed by a SemVer version", r.stderr, 1, true)
    assert.are.equal(2, h.relua({ "version", "notes", "--tag=v1.1.0", "--bump=major" }, { cwd = dir }).code)
  end)

  it("says why there is nothing to release, exit 0 and nothing on stdout", function()
    local dir = history({ "docs: only docs" })
    local r = h.relua({ "version", "next" }, { cwd = dir })
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
    assert.are.equal("relua: no release: 1 commit since v1.2.3, none a fix, feature, performance change, revert "
      .. "or breaking change (use --bump=patch|minor|major to release anyway)\n", r.stderr)
    r = h.relua({ "version", "next", "--json" }, { cwd = dir })
    assert.are.equal(json.null, json.decode(r.stdout).version)
  end)

  it("refuses bad input with exit 2 and a message naming it", function()
    local dir = history({ "fix: x" })
    local r = h.relua({ "version", "next", "--bump=huge" }, { cwd = dir })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("--bump must be auto, patch, minor or major, not 'huge'", 1, true), r.stderr)
    r = h.relua({ "version", "next", "--nope" }, { cwd = dir })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("unknown option --nope", 1, true), r.stderr)
    r = h.relua({ "version", "frobnicate" }, { cwd = dir })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("unknown command: relua version frobnicate", 1, true), r.stderr)
    r = h.relua({ "version", "next" }, { cwd = fix.tmpdir() })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("not a git repository", 1, true), r.stderr)
    r = h.relua({ "version", "next", "--from=nope" }, { cwd = dir })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("unknown revision 'nope'", 1, true), r.stderr)
  end)

  it("bumps and compares versions, and still shows relua's own version", function()
    assert.are.equal("1.3.0-rc.0\n", h.relua({ "version", "bump", "1.2.3", "preminor", "--preid=rc" }).stdout)
    assert.are.equal("-1\n", h.relua({ "version", "compare", "1.0.0-rc.1", "1.0.0" }).stdout)
    assert.are.equal("1\n", h.relua({ "version", "compare", "1.0.post1", "1.0", "--pep440" }).stdout)
    local r = h.relua({ "version", "bump", "1.2", "minor" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("'1.2' is not a version", 1, true), r.stderr)
    r = h.relua({ "version" })
    assert.are.equal(0, r.code)
    assert.truthy(r.stdout:find("^relua %d+%.%d+%.%d+ %(Lua 5%.4"), r.stdout)
  end)
end)

describe("relua.git commit_tree and pack_refs", function()
  after_each(fix.cleanup)

  it("writes commits in a bare repository without touching refs, with the given times", function()
    local bare = fix.tmpdir() .. "/b.git"
    local repo <close> = assert(git.init(bare, { bare = true }))
    local who = { name = "Rel Ua", email = "relua@example.test", time = 1700000000 }
    local c1 = assert(repo:commit_tree("root", {}, { author = who }))
    local c2 = assert(repo:commit_tree("fix: second\n\nbody", { c1 }, { author = who }))
    local m = assert(repo:commit_tree("Merge", { c2, c1 }, { author = who, committer = { name = "C", email = "c@x", time = 1700000060 } }))
    assert.are.equal("4b825dc642cb6eb9a060e54bf8d69288fbee4904", G(bare, "rev-parse", c1 .. "^{tree}"))  -- the empty tree
    assert.are.equal(c2 .. " " .. c1, G(bare, "log", "-1", "--format=%P", m))
    assert.are.equal("Rel Ua relua@example.test 1700000000 C 1700000060", G(bare, "log", "-1", "--format=%an %ae %at %cn %ct", m))
    assert.are.equal("fix: second\n\nbody", G(bare, "log", "-1", "--format=%B", c2))
    assert.are.equal("", G(bare, "for-each-ref"))  -- no reference written
    assert(repo:branch_create("master", m))
    assert.are.equal(m, G(bare, "rev-parse", "master"))
    local n, msg, code = repo:commit_tree("x", { "nope" }, { author = who })
    assert.is_nil(n)
    assert.are.equal("ENOTFOUND", code)
    assert.truthy(msg:find("unknown revision 'nope'", 1, true))
    assert.has_error(function() repo:commit_tree("x", {}, { author = { name = "a", email = "b", time = "now" } }) end)
  end)

  it("packs loose references like git pack-refs, and the tags read the same", function()
    local dir = history({ "fix: a", "feat: b" })
    G(dir, "tag", "-a", "-m", "annotated", "v1.3.0")
    local repo <close> = assert(git.open(dir))
    local before = repo:tags("v*")
    assert.is_true(repo:pack_refs())
    assert.are.equal("", G(dir, "for-each-ref", "--format=%(refname)", "refs/tags/v*"):gsub("[^\n]+", function(ref)
      return io.open(dir .. "/.git/" .. ref) and ref or ""
    end):gsub("\n", ""))  -- none loose any more
    assert.truthy(h.slurp(dir .. "/.git/packed-refs"):find("refs/tags/v1.3.0", 1, true))
    assert.are.same(before, repo:tags("v*"))
    assert.are.equal("v1.3.0", versioning.last_release(repo).tag)
  end)

  it("lists tag names alone, loose and packed, each once", function()
    local dir = history({ "fix: a" })
    G(dir, "tag", "v2.0.0")
    G(dir, "tag", "other")
    G(dir, "pack-refs", "--all")
    G(dir, "tag", "-f", "v2.0.0", "HEAD~1")  -- loose now, hiding its packed line
    G(dir, "tag", "v3.0.0")                  -- loose only
    local repo <close> = assert(git.open(dir))
    local names = repo:tag_names("v*")
    table.sort(names)
    assert.are.same({ "v1.2.3", "v2.0.0", "v3.0.0" }, names)
    assert.are.equal(G(dir, "tag", "-l"), table.concat((function()
      local all = repo:tag_names()
      table.sort(all)
      return all
    end)(), "\n"))
  end)
end)
