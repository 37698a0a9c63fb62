-- relua.git against the git command line on a repository with 20,000 commits and 10,000
-- tags (half annotated, half lightweight, packed like a clone's), built with
-- `git fast-import` from a generated stream into a temporary folder for this run.
--  1. the latest v* tag reachable from HEAD: repo:latest_tag("v*")
--     vs `git describe --tags --match 'v*' --abbrev=0`
--  2. listing tags by glob: repo:tags("v1.*") vs `git tag -l 'v1.*'`
--  3. a release's git pre-flight (HEAD, dirty?, tag exists?, branch exists?) asked in one
--     relua process vs the same four questions asked with four git commands
-- "relua" is the time inside a running relua (what a recipe pays: open + question);
-- "git" is the time to run the git command from that process. For 1 and 2 the whole
-- `relua -e ...` process (start-up included) is also shown, as information. Each number
-- is the median of alternating rounds.
local git = require "relua.git"
local proc = require "relua.proc"
local fs = require "relua.fs"

local ROUNDS = 9
local COMMITS, TAGS = 20000, 10000

local bench = require "benchlib"
local median = bench.median

local report = bench.report

local function info(name, a_label, a, b_label, b)
  print(string.format("  (%s: %s %.2f ms vs %s %.2f ms: ratio %.2f, information)",
    name, a_label, a * 1000, b_label, b * 1000, a / b))
end

local ENV = { GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_GLOBAL = "/dev/null" }

local function run(argv, opts)
  opts = opts or {}
  opts.env = opts.env or ENV
  local r = assert(proc.run(argv, opts))
  assert(r.code == 0, table.concat(argv, " ") .. ": " .. r.stderr)
  return r
end

-- Tag i (1-based) sits on commit 2*i - 1 and is named v<major>.<minor>.<patch>.
local function tag_name(i)
  return string.format("v%d.%d.%d", i // 1000, (i // 10) % 100, i % 10)
end

local function build(dir)
  local parts = {}
  local function add(s) parts[#parts + 1] = s end
  local t = 1600000000
  for n = 1, COMMITS do
    local msg = "commit " .. n .. "\n"
    local content = "version " .. n .. "\n"
    add(string.format("commit refs/heads/main\nmark :%d\ncommitter Rel Ua <relua@example.test> %d +0000\ndata %d\n%s",
      n, t + n * 60, #msg, msg))
    if n > 1 then add(string.format("from :%d\n", n - 1)) end
    add(string.format("M 644 inline VERSION\ndata %d\n%s\n", #content, content))
    if n % 2 == 1 and (n + 1) // 2 <= TAGS then
      local i = (n + 1) // 2
      if i % 2 == 0 then
        local tmsg = "Release " .. tag_name(i) .. "\n"
        add(string.format("tag %s\nfrom :%d\ntagger Rel Ua <relua@example.test> %d +0000\ndata %d\n%s\n",
          tag_name(i), n, t + n * 60, #tmsg, tmsg))
      else
        add(string.format("reset refs/tags/%s\nfrom :%d\n\n", tag_name(i), n))
      end
    end
  end
  run({ "git", "init", "-q", "-b", "main", dir })
  run({ "git", "-C", dir, "fast-import", "--quiet" }, { stdin = table.concat(parts) })
  run({ "git", "-C", dir, "pack-refs", "--all" })
  run({ "git", "-C", dir, "checkout", "-q", "main" })
end

local dir = assert(fs.tmpdir("relua-git-bench"))
local ok, err = pcall(function()
  local t0 = proc.clock()
  local repo_dir = dir .. "/repo"
  build(repo_dir)
  print(string.format("  (built %d commits and %d tags in %.1f s)", COMMITS, TAGS, proc.clock() - t0))
  local relua = arg and arg[-1] or "./relua"
  if not relua:find("/") then relua = "./relua" end

  -- 1. latest v* tag reachable from HEAD
  local want = run({ "git", "-C", repo_dir, "describe", "--tags", "--match", "v*", "--abbrev=0" }).stdout:gsub("%s+$", "")
  local ours, theirs, whole = {}, {}, {}
  local script1 = string.format("local r = require('relua.git').open(%q); print((r:latest_tag('v*')))", repo_dir)
  for _ = 1, ROUNDS do
    local s = proc.clock()
    local repo <close> = assert(git.open(repo_dir))
    local name = repo:latest_tag("v*")
    ours[#ours + 1] = proc.clock() - s
    assert(name == want, string.format("latest_tag %s, git describe %s", tostring(name), want))
    s = proc.clock()
    run({ "git", "-C", repo_dir, "describe", "--tags", "--match", "v*", "--abbrev=0" })
    theirs[#theirs + 1] = proc.clock() - s
    s = proc.clock()
    local r = run({ relua, "-e", script1 })
    whole[#whole + 1] = proc.clock() - s
    assert(r.stdout:gsub("%s+$", "") == want)
  end
  local g = median(theirs)
  report("latest v* tag from HEAD (" .. want .. ")", "relua", median(ours), "git describe", g, 1.0)
  info("whole process", "relua -e", median(whole), "git describe", g)

  -- 2. tags by glob
  local listing = run({ "git", "-C", repo_dir, "tag", "-l", "v1.*" }).stdout
  ours, theirs, whole = {}, {}, {}
  local script2 = string.format("local r = require('relua.git').open(%q); local t = {}; "
    .. "for i, x in ipairs(r:tags('v1.*')) do t[i] = x.name end; print(table.concat(t, '\\n'))", repo_dir)
  local count
  for _ = 1, ROUNDS do
    local s = proc.clock()
    local repo <close> = assert(git.open(repo_dir))
    local tags = repo:tags("v1.*")
    ours[#ours + 1] = proc.clock() - s
    count = #tags
    s = proc.clock()
    run({ "git", "-C", repo_dir, "tag", "-l", "v1.*" })
    theirs[#theirs + 1] = proc.clock() - s
    s = proc.clock()
    local r = run({ relua, "-e", script2 })
    whole[#whole + 1] = proc.clock() - s
    assert(r.stdout == listing, "relua's listing differs from git tag -l")
  end
  g = median(theirs)
  report(string.format("tag glob v1.* (%d of %d tags, with their commits)", count, TAGS), "relua", median(ours),
    "git tag -l", g, 1.0)
  info("whole process", "relua -e", median(whole), "git tag -l", g)

  -- 3. pre-flight: HEAD, dirty, tag exists, branch exists
  ours, theirs = {}, {}
  for _ = 1, ROUNDS do
    local s = proc.clock()
    local repo <close> = assert(git.open(repo_dir))
    local head = repo:head()
    local dirty = repo:dirty()
    local tag_there = repo:tag_exists("v10.0.1")
    local branch_there = repo:branch_exists("release/pypi-v10.0.1")
    ours[#ours + 1] = proc.clock() - s
    assert(head.branch == "main" and dirty == false and tag_there == false and branch_there == false)
    s = proc.clock()
    run({ "git", "-C", repo_dir, "rev-parse", "HEAD" })
    run({ "git", "-C", repo_dir, "status", "--porcelain" })
    local r3 = assert(proc.run({ "git", "-C", repo_dir, "rev-parse", "-q", "--verify", "refs/tags/v10.0.1" }, { env = ENV }))
    local r4 = assert(proc.run({ "git", "-C", repo_dir, "rev-parse", "-q", "--verify", "refs/heads/release/pypi-v10.0.1" }, { env = ENV }))
    theirs[#theirs + 1] = proc.clock() - s
    assert(r3.code == 1 and r4.code == 1)
  end
  report("pre-flight (HEAD, dirty, tag, branch)", "relua", median(ours), "4 git commands", median(theirs), 0.2)
end)
if not os.getenv("KEEP") then fs.remove(dir, { recursive = true }) else print(dir) end
if not ok then error(err, 0) end
