-- relua.http against the curl command line (same libcurl), on the local test origin:
--  1. 200 small GETs with 8 in flight: http.all vs `curl --parallel --parallel-max 8`
--  2. a 256 MiB multipart upload streamed from disk: wall time and peak resident memory,
--     relua vs `curl -F name=@file` (both without Expect: 100-continue, which the origin ignores)
-- Both sides talk to the same Python origin (tests/support/httpd.py) in alternating rounds;
-- each line is the ratio of the medians with its target.
package.path = "tests/?.lua;" .. package.path
local http = require "relua.http"
local proc = require "relua.proc"
local fs = require "relua.fs"
local servers = require "support.http_servers"

local ROUNDS = 5

local bench = require "benchlib"
local median = bench.median

local report = bench.report

local relua = arg and arg[-1] or "./relua"
if not relua:find("/") then relua = "./relua" end

local origin = servers.httpd()
local dir = assert(fs.tmpdir("relua-http-bench"))
local ok, err = pcall(function()
  -- 1. 200 GETs, 8 at a time
  local N = 200
  local urls, reqs = {}, {}
  for i = 1, N do
    urls[i] = origin.url .. "/bytes/2048?i=" .. i
    reqs[i] = { url = urls[i] }
  end
  local curl_argv = { "curl", "-s", "--parallel", "--parallel-max", "8" }
  for i = 1, N do
    curl_argv[#curl_argv + 1] = "-o"
    curl_argv[#curl_argv + 1] = "/dev/null"
    curl_argv[#curl_argv + 1] = urls[i]
  end
  local ours, theirs = {}, {}
  for _ = 1, ROUNDS do
    local t0 = proc.clock()
    local results = http.all(reqs, { concurrency = 8, progress = false })
    ours[#ours + 1] = proc.clock() - t0
    for i, r in ipairs(results) do
      assert(r.response and r.response.status == 200, "request " .. i .. ": " .. tostring(r.err))
    end
    t0 = proc.clock()
    local c = assert(proc.run(curl_argv))
    theirs[#theirs + 1] = proc.clock() - t0
    assert(c.code == 0, "curl failed: " .. c.stderr)
  end
  report("200 GETs, 8 in flight", "http.all", median(ours) * 1000, "curl --parallel", median(theirs) * 1000, 1.3, "ms")

  -- 2. 256 MiB multipart upload streamed from disk
  local big = dir .. "/big.whl"
  assert(proc.run({ "truncate", "-s", "256M", big }).code == 0)
  local script = dir .. "/up.lua"
  assert(fs.write(script, string.format([[
    local http = require "relua.http"
    local r, err = http.post(%q, { form = { { name = "content", file = %q } }, progress = false })
    assert(r and r.status == 200, err or (r and r.body))
  ]], origin.url .. "/echo", big)))
  local function timed(argv)
    local cmd = { "/usr/bin/time", "-f", "%e %M" }
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local r = assert(proc.run(cmd))
    assert(r.code == 0, table.concat(argv, " ") .. " failed: " .. r.stderr)
    local secs, kb = r.stderr:match("([%d.]+) (%d+)%s*$")
    return tonumber(secs), tonumber(kb)
  end
  local t_ours, t_theirs, m_ours, m_theirs = {}, {}, {}, {}
  for _ = 1, ROUNDS do
    local s, kb = timed { relua, script }
    t_ours[#t_ours + 1], m_ours[#m_ours + 1] = s, kb
    s, kb = timed { "curl", "-s", "-f", "-H", "Expect:", "-o", "/dev/null", "-F", "content=@" .. big, origin.url .. "/echo" }
    t_theirs[#t_theirs + 1], m_theirs[#m_theirs + 1] = s, kb
  end
  report("256 MiB multipart upload", "relua", median(t_ours), "curl -F", median(t_theirs), 1.2, "s")
  local peak = median(m_ours) / 1024
  print(string.format("256 MiB upload peak memory: relua %.1f MB vs curl -F %.1f MB: ratio %.2f (target: relua under 30 MB) %s",
    peak, median(m_theirs) / 1024, median(m_ours) / median(m_theirs), peak < 30 and "ok" or "over"))
end)
origin:stop()
fs.remove(dir, { recursive = true })
if not ok then error(err, 0) end
