-- The README's first-recipe walkthrough, run as printed: its recipe, every command of its
-- console blocks in a fresh git repository, and every output line it shows (times, commit
-- ids and digests aside), so the README stays true.
local h = require "support.h"
local fs = require "relua.fs"

local README = h.slurp(h.root .. "/README.md")

-- The text of a `## TITLE` section.
local function section(title)
  local s = README:find("\n## " .. title, 1, true)
  assert(s, "README.md has no section '## " .. title .. "'")
  local e = README:find("\n## ", s + 4, true) or #README
  return README:sub(s, e)
end

-- The console blocks (fenced with a bare ```) of a text: {{cmd=, want={lines}}, ...} per
-- block; "..." stands for lines not shown.
local function consoles(text)
  local blocks, cur, fenced = {}, nil, false
  for line in text:gmatch("([^\n]*)\n") do
    if line:match("^```") then
      if fenced then
        if cur then blocks[#blocks + 1] = cur end
        fenced, cur = false, nil
      else
        fenced = true
        if line == "```" then cur = {} end
      end
    elseif cur then
      local cmd = line:match("^%$ (.*)")
      if cmd then cur[#cur + 1] = { cmd = cmd, want = {} }
      elseif #cur > 0 and line ~= "..." then table.insert(cur[#cur].want, line) end
    end
  end
  return blocks
end

-- What varies from run to run: times, durations, commit ids, digests.
local function norm(s)
  return (s:gsub("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ", "TIME")
           :gsub("%(%d+%.%d+s%)", "(Ns)")
           :gsub("duration=[%d%.]+", "duration=N")
           :gsub("%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x", "SHA")
           :gsub("sha256 %x+", "sha256 X"))
end

-- A fresh repository holding the README's recipe, and a shell that finds `relua`.
local function repo()
  local dir = h.tmpdir()
  local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
  assert(fs.mkdir(dir .. "/bin"))
  assert.are.equal(0, h.sh("ln -s " .. h.quote(bin) .. " " .. h.quote(dir .. "/bin/relua")).code)
  local env = { PATH = dir .. "/bin:" .. os.getenv("PATH"), RELUA_HOME = false, RELUA_STORE = false,
                RELUA_PLAYBOOKS = false, NO_COLOR = "1", GIT_AUTHOR_NAME = "A U Thor",
                GIT_AUTHOR_EMAIL = "author@example.test", GIT_COMMITTER_NAME = "A U Thor",
                GIT_COMMITTER_EMAIL = "author@example.test" }
  local work = dir .. "/work"
  local function sh(cmd)
    return h.sh(cmd .. " 2>&1", { cwd = work, env = env })
  end
  assert(fs.mkdir(work))
  local r = sh("git init -q -b main && echo hello > README && git add README && git commit -q -m init")
  assert.are.equal(0, r.code, r.stdout)
  assert(fs.write(work .. "/release.lua", section("Your first recipe"):match("```lua\n(.-)```")))
  return sh
end

-- Runs a block's commands; each output line the README shows must be in the output.
local function replay(sh, block)
  for _, c in ipairs(block) do
    local got = sh(c.cmd).stdout
    for _, line in ipairs(c.want) do
      assert.is_truthy(norm(got):find(norm(line), 1, true),
        string.format("README: `%s` should print\n  %s\nbut printed:\n%s", c.cmd, line, got))
    end
  end
end

describe("README.md", function()
  after_each(h.cleanup)

  it("names every command of `relua help`, so a reader can look each one up", function()
    local text = h.slurp(h.root .. "/README.md")
    local missing = {}
    for name, c in pairs(require("relua.cli").commands) do
      local group, word = name:match("^(%S+) (%S+)$")
      local found
      if group then  -- a line with `relua GROUP` that names WORD (e.g. relua playbook list | show ID)
        for line in text:gmatch("[^\n]+") do
          if line:find("relua " .. group, 1, true) and line:find("%f[%w]" .. word .. "%f[^%w]") then found = true break end
        end
      else
        found = text:find("relua " .. name .. "%f[^%w-]") ~= nil
      end
      if not found and not c.hidden then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("the Lua API table names every module a recipe or a script can require", function()
    local api = section("Lua API")
    -- the engine's and the command line's own modules: not called by a recipe or a script
    local internal = { cli = true, dryrun = true, ordering = true, release = true, repl = true }
    local missing = {}
    for _, path in ipairs(require("relua.fs").glob(h.root .. "/lib/relua/*.lua")) do
      local name = path:match("([^/]+)%.lua$")
      if not internal[name] and not api:find("`relua." .. name .. "`", 1, true) then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("the first-recipe walkthrough runs as printed", function()
    local sh = repo()
    local walk = consoles(section("Your first recipe"))
    assert.are.equal(2, #walk)
    for _, block in ipairs(walk) do replay(sh, block) end
    -- reading it afterwards: the audit log of that walkthrough
    local reading = consoles(section("Reading `relua status`"))
    for _, block in ipairs(reading) do
      if block[1].cmd:match("^relua log") then replay(sh, block) end
    end
  end)

  it("relua status shows the failed first run as printed", function()
    local sh = repo()
    assert.are.equal(1, sh("relua release.lua 0.1.0").code)
    for _, block in ipairs(consoles(section("Reading `relua status`"))) do
      if block[1].cmd:match("^relua status") then replay(sh, block) end
    end
  end)
end)
