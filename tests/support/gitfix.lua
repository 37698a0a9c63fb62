-- Fixtures for the git specs: real repositories made with the git CLI in temporary folders
-- (relua itself never runs git; the tests may, to build fixtures and to compare).
local proc = require "relua.proc"
local fs = require "relua.fs"

local M = {}

-- A fixed identity and no user/system config, so every run builds the same history.
M.env = {
  GIT_AUTHOR_NAME = "Rel Ua", GIT_AUTHOR_EMAIL = "relua@example.test",
  GIT_COMMITTER_NAME = "Rel Ua", GIT_COMMITTER_EMAIL = "relua@example.test",
  GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_GLOBAL = "/dev/null", GIT_TERMINAL_PROMPT = "0",
}

local dirs = {}

--- A new temporary folder, removed by M.cleanup().
function M.tmpdir()
  local d = assert(fs.tmpdir("relua-git"))
  dirs[#dirs + 1] = d
  return d
end

function M.cleanup()
  for i = #dirs, 1, -1 do
    fs.remove(dirs[i], { recursive = true })
    dirs[i] = nil
  end
end

--- Runs git in dir; returns its trimmed stdout (raises on a non-zero exit).
function M.git(dir, ...)
  local argv = { "git", "-C", dir, ... }
  local r = assert(proc.run(argv, { env = M.env, timeout = 30 }))
  if r.code ~= 0 then
    error(string.format("git %s failed (%s): %s", table.concat(argv, " ", 4), tostring(r.code), r.stderr), 2)
  end
  return (r.stdout:gsub("%s+$", ""))
end

--- Like M.git but returns the result without raising.
function M.try(dir, ...)
  return assert(proc.run({ "git", "-C", dir, ... }, { env = M.env, timeout = 30 }))
end

--- Writes a file inside a work tree (creating folders).
function M.write(dir, rel, content)
  local path = dir .. "/" .. rel
  assert(fs.mkdir(fs.dirname(path)))
  assert(fs.write(path, content))
  return path
end

--- A new work-tree repository on branch main with user config; optionally one commit.
function M.repo(dir, opts)
  opts = opts or {}
  assert(fs.mkdir(dir))
  M.git(dir, "init", "-q", "-b", "main")
  M.git(dir, "config", "user.name", "Rel Ua")
  M.git(dir, "config", "user.email", "relua@example.test")
  if opts.commit ~= false then M.commit(dir, "initial", "README", "hello\n") end
  return dir
end

--- Commits a change to file (default "file.txt") with message; returns the new HEAD id.
--- Each commit is a minute after the previous one, so "newest first" is well defined.
M.clock = 1700000000
function M.commit(dir, message, file, content)
  file = file or "file.txt"
  M.write(dir, file, content or (message .. "\n"))
  M.git(dir, "add", "-A")
  M.clock = M.clock + 60
  local date = string.format("@%d +0000", M.clock)
  M.env.GIT_AUTHOR_DATE, M.env.GIT_COMMITTER_DATE = date, date
  local ok, err = pcall(M.git, dir, "commit", "-q", "-m", message)
  M.env.GIT_AUTHOR_DATE, M.env.GIT_COMMITTER_DATE = nil, nil
  if not ok then error(err, 2) end
  return M.git(dir, "rev-parse", "HEAD")
end

--- A bare repository on branch main.
function M.bare(path)
  M.git("/", "init", "-q", "--bare", "-b", "main", path)
  return path
end

return M
