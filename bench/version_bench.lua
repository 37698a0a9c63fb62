-- The next version and its release notes on a 20,000-commit / 10,000-tag history:
-- `relua version next --json` vs `semantic-release --dry-run` (bench/npm, pinned by its
-- lock) with @semantic-release/commit-analyzer and @semantic-release/release-notes-generator
-- on the conventionalcommits preset, as whole processes, wall time and peak RSS
-- (/usr/bin/time). The answers must be the same: the version, and the notes byte for byte
-- (semantic-release's are read by bench/npm/capture.cjs, a plugin that runs after the notes
-- generator). semantic-release runs offline: --no-ci, no GitHub or npm plugin, the
-- repository URL a local bare repository (file://).
--
-- The history is written with relua.git (commit_tree in a bare repository, then a libgit2
-- clone): 19,000 commits carry the 10,000 release tags v0.0.1 ... v10.0.0 (half annotated),
-- 1,000 conventional commits follow (fixes, features with scopes, docs, chores, a
-- BREAKING CHANGE footer, a `feat!:`, a reverted commit and its revert, a merge), and a side
-- branch carries a higher tag (v99.0.0) that is not merged: it must not count.
local git = require "relua.git"
local proc = require "relua.proc"
local fs = require "relua.fs"
local json = require "relua.json"
local bench = require "benchlib"

local COMMITS, TAGS, TAGGED = 20000, 10000, 19000
local ROUNDS_RELUA, ROUNDS_SR = 9, tonumber(os.getenv("RELUA_BENCH_SR_ROUNDS")) or 1
local COMMIT_URL = "https://git.example.test/relua/commit/"
local SR = "bench/npm/node_modules/semantic-release/bin/semantic-release.js"

local function tag_name(i)
  return string.format("v%d.%d.%d", i // 1000, (i // 10) % 100, i % 10)
end

local SUBJECTS = { "cache the index", "Handle empty input", "speed up the walk", "retry on reset",
                   "log the digest", "drop a copy", "read the lock file", "name the holder" }

-- The message of commit n after the last release (deterministic, varied).
local function message(n)
  local k = n % 11
  local s = SUBJECTS[n % #SUBJECTS + 1] .. " " .. n
  if k == 0 then return "feat(api): " .. s end
  if k == 1 or k == 2 then return "fix: " .. s end
  if k == 3 then return "fix(cli): " .. s end
  if k == 4 then return "docs: " .. s end
  if k == 5 then return "chore(deps): " .. s end
  if k == 6 then return "perf: " .. s end
  if k == 7 then return "feat: " .. s .. "\n\nA longer body that explains\nthe change.\n" end
  if k == 8 then return "refactor(core): " .. s end
  if k == 9 then return "test: " .. s end
  return "Update " .. s  -- not conventional
end

local function build(dir)
  local bare = dir .. "/remote.git"
  local repo <close> = assert(git.init(bare, { bare = true }))
  local t = 1600000000
  local ids, prev = {}, {}
  local function sig(n) return { name = "Rel Ua", email = "relua@example.test", time = t + n * 60 } end
  local function commit(n, msg, parents)
    local id = assert(repo:commit_tree(msg, parents, { author = sig(n) }))
    return id
  end
  local tag_at = {}
  for i = 1, TAGS do tag_at[i * TAGGED // TAGS] = i end
  for n = 1, COMMITS do
    local msg
    if n <= TAGGED then
      msg = (n % 3 == 0 and "feat: " or "fix: ") .. "old change " .. n
    elseif n == 19500 then
      msg = "perf(walk): read commits lazily 19500\n\nBREAKING CHANGE: walk() returns an iterator, not a list\n"
    elseif n == 19800 then
      msg = "feat!: drop the v1 lock format 19800"
    elseif n == 19901 then
      msg = "feat(api): a change that is reverted 19901"
    elseif n == 19902 then
      msg = string.format('Revert "feat(api): a change that is reverted 19901"\n\nThis reverts commit %s.\n', ids[19901])
    else
      msg = message(n)
    end
    if n == 19700 then  -- a merge of a one-commit topic branch
      local topic = commit(n, "fix(merge): topic fix 19700", prev)
      ids[n] = commit(n, "Merge branch 'topic'", { prev[1], topic })
    else
      ids[n] = commit(n, msg, prev)
    end
    prev = { ids[n] }
    local i = tag_at[n]
    if i then
      assert(repo:tag(tag_name(i), ids[n], i % 2 == 0 and { message = "Release " .. tag_name(i),
        tagger = sig(n) } or nil))
    end
  end
  assert(repo:branch_create("master", ids[COMMITS]))  -- the branch HEAD names after git.init
  -- a side branch with a higher tag that main does not contain
  local side = commit(COMMITS + 1, "feat: side work", { ids[19600] })
  assert(repo:branch_create("side", side))
  assert(repo:tag("v99.0.0", side))
  local work = dir .. "/work"
  local w = assert(git.clone("file://" .. bare, work, { branch = "master" }))
  assert(w:pack_refs())  -- as git clone leaves them
  w:close()
  return bare, work
end

local function timed(argv, opts)
  local cmd = { "/usr/bin/time", "-f", "%e %M" }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local r = assert(proc.run(cmd, opts))
  assert(r.code == 0, table.concat(argv, " ") .. " failed: " .. r.stderr:sub(-2000))
  local secs, kb = r.stderr:match("([%d.]+) (%d+)%s*$")
  return tonumber(secs), tonumber(kb), r
end

local dir = assert(fs.tmpdir("relua-version-bench"))
local ok, err = pcall(function()
  local t0 = proc.clock()
  local bare, work = build(dir)
  print(string.format("  (built %d commits and %d tags with relua.git in %.1f s)", COMMITS, TAGS, proc.clock() - t0))
  local root = fs.cwd()
  assert(fs.write(work .. "/.releaserc.json", json.encode({
    branches = { "master" },
    repositoryUrl = "file://" .. bare,
    tagFormat = "v${version}",
    plugins = {
      { "@semantic-release/commit-analyzer", { preset = "conventionalcommits" } },
      { "@semantic-release/release-notes-generator", { preset = "conventionalcommits", linkCompare = false,
        presetConfig = { commitUrlFormat = COMMIT_URL .. "{{hash}}" } } },
      root .. "/bench/npm/capture.cjs",
    },
  })))
  local capture = dir .. "/capture.json"
  local env = { PATH = os.getenv("PATH"), HOME = dir, RELUA_CAPTURE = capture, TZ = "UTC", LANG = "C.UTF-8",
                GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_GLOBAL = "/dev/null", NO_COLOR = "1" }
  local relua = arg and arg[-1] or "./relua"
  if not relua:find("/") then relua = "./relua" end
  relua = relua:sub(1, 1) == "/" and relua or (root .. "/" .. relua)
  local date = os.date("!%Y-%m-%d")
  local ours, theirs, m_ours, m_theirs = {}, {}, {}, {}
  local answer
  for round = 1, math.max(ROUNDS_RELUA, ROUNDS_SR) do
    if round <= ROUNDS_SR then
      fs.remove(capture)
      local s, kb = timed({ "node", root .. "/" .. SR, "--dry-run", "--no-ci" }, { cwd = work, env = env })
      theirs[#theirs + 1], m_theirs[#m_theirs + 1] = s, kb
    end
    if round <= ROUNDS_RELUA then
      local s, kb, r = timed({ relua, "version", "next", "--json", "--commit-url=" .. COMMIT_URL, "--date=" .. date },
        { cwd = work, env = env })
      ours[#ours + 1], m_ours[#m_ours + 1] = s, kb
      answer = r.stdout
    end
  end
  local mine = assert(json.decode(answer))
  local sr = assert(json.decode(assert(fs.read(capture))))
  assert(mine.last and mine.last.tag == tag_name(TAGS), "relua's last release: " .. tostring(mine.last and mine.last.tag))
  assert(sr.last == mine.last.version, string.format("last release: semantic-release %s, relua %s", sr.last, mine.last.version))
  assert(sr.version == mine.version, string.format("next version: semantic-release %s, relua %s", sr.version, mine.version))
  if sr.notes ~= mine.notes then
    fs.write("/tmp/relua-version-bench-theirs.md", sr.notes)
    fs.write("/tmp/relua-version-bench-ours.md", mine.notes)
    error("the release notes differ: see /tmp/relua-version-bench-{theirs,ours}.md")
  end
  print(string.format("  (same answer: %s -> %s, %s bump, %d commits since, notes %d bytes identical)",
    mine.last.tag, mine.version, mine.bump, mine.commits, #mine.notes))
  local ratio = bench.median(ours) / bench.median(theirs)
  print(string.format("next version + notes: relua %.3f s vs semantic-release --dry-run %.3f s: %.0fx faster "
    .. "(ratio %.3f, target <= 0.02) %s", bench.median(ours), bench.median(theirs), 1 / ratio, ratio,
    ratio <= 0.02 and "ok" or "over"))
  local mr = bench.median(m_ours) / bench.median(m_theirs)
  print(string.format("next version + notes peak memory: relua %.1f MB vs semantic-release %.1f MB: ratio %.3f "
    .. "(target < 0.1) %s", bench.median(m_ours) / 1024, bench.median(m_theirs) / 1024, mr, mr < 0.1 and "ok" or "over"))
end)
if os.getenv("RELUA_BENCH_KEEP") then print("  (kept " .. dir .. ")") else fs.remove(dir, { recursive = true }) end
if not ok then error(err, 0) end
