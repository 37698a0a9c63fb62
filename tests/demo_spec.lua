-- `make demo` (demo/pypi-npm.lua), run as a user runs it: what it shows at each step, and
-- that it leaves nothing running, after a whole run and after Ctrl-C.
local h = require "support.h"
local fs = require "relua.fs"
local proc = require "relua.proc"
local listening = require("support.ports").listening

-- The servers' ports and the checkout the demo announced.
local function announced(text)
  local ports = {}
  for _, what in ipairs({ "git", "npm", "PyPI", "forge" }) do
    ports[what] = tonumber(text:match("\n   " .. what .. "%s+http://127%.0%.0%.1:(%d+)"))
  end
  return ports, text:match("The project %(([^,]+), cloned")
end

local function assert_nothing_left(text)
  local ports, checkout = announced(text)
  for what, port in pairs(ports) do
    assert.is_false(listening(port), what .. " still listens on " .. port)
  end
  assert.are.equal(4, (function() local n = 0 for _ in pairs(ports) do n = n + 1 end return n end)())
  assert.is_truthy(checkout)
  assert.is_false(fs.exists(checkout), "the sandbox's checkout is still there: " .. tostring(checkout))
end

describe("make demo (demo/pypi-npm.lua)", function()
  it("breaks the release half-way, diagnoses, recovers, re-runs with everything skipped_existing, and stops everything", function()
    local r = h.relua({ "demo/pypi-npm.lua" }, { env = { NO_COLOR = "1", RELUA_DEMO_KEEP = false } })
    local o = r.stdout
    assert.are.equal(0, r.code, o .. r.stderr)
    local both = o .. r.stderr  -- relua's own messages (a failure, the hints) go to stderr
    -- 1. the first run: npm out, PyPI down half-way, the playbook named
    assert.matches("== 1. The release of ticket 7", o, 1, true)
    assert.matches("relua: phase pypi-publish failed", both, 1, true)
    assert.matches("past the point of no return", both, 1, true)
    assert.matches("Matching playbooks:\n  pypi-npm-pypi-partial", both, 1, true)
    assert.matches("npm got 1.0.1 of both packages (1.0.1 / 1.0.1),\n   PyPI got 1 file(s)", o, 1, true)
    -- 2-4. status, diagnose, a recover refused while the index is down
    assert.matches("failed    pypi-publish", o, 1, true)
    assert.matches("1. pypi-npm-pypi-partial [confirmed]", o, 1, true)
    assert.matches("verify failed: the PyPI index answers", both, 1, true)
    -- 5. recovered: only the missing file uploaded
    assert.matches("playbook pypi-npm-pypi-partial: verified", o, 1, true)
    assert.matches("release 7 done: all 7 phases done", o, 1, true)
    assert.matches("the index received 1 upload(s): only the file it lacked", o, 1, true)
    -- 6. another runner, same version: the summary table, every artifact skipped_existing
    local summary = o:match("== The summary.-\n(publish:\n.-)\n\n")
    assert.is_truthy(summary, o)
    local rows, skipped = 0, 0
    for line in summary:gmatch("\n  (%S+)  [^\n]*") do
      if line ~= "target" then rows = rows + 1 end
    end
    for _ in summary:gmatch("skipped_existing") do skipped = skipped + 1 end
    assert.are.equal(8, rows, summary)
    assert.are.equal(8, skipped, summary)
    -- the audit log, then the end
    assert.matches("$ relua log 7 | grep -v event=state\n", o, 1, true)
    assert.matches("event=playbook-verified playbook=pypi-npm-pypi-partial", o, 1, true)
    assert.matches("Done: v1.0.1 is on npm, PyPI and the forge, main says 1.0.1+dev", o, 1, true)
    assert.matches("servers stopped, sandbox removed", o, 1, true)
    assert_nothing_left(o)
  end)

  it("stops every server and removes the sandbox on Ctrl-C (exit 130)", function()
    local dir = h.tmpdir()
    local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
    -- its output straight to a file, read while it runs
    local demo <close> = assert(proc.spawn({ "sh", "-c", 'exec "$0" demo/pypi-npm.lua >"$1" 2>"$2"', bin,
      dir .. "/out", dir .. "/err" }, { env = { NO_COLOR = "1", RELUA_DEMO_QUIET = "1" }, capture = false }))
    local deadline = proc.clock() + 120
    while not (fs.read(dir .. "/out") or ""):find("== 1.", 1, true) and demo:running() and proc.clock() < deadline do
      proc.sleep(0.1)
    end
    assert.is_true(demo:running(), fs.read(dir .. "/out"))
    assert(demo:kill("INT"))
    local res = demo:wait(60)
    local text = fs.read(dir .. "/out") or ""
    assert.are.equal(130, res.code, text)
    assert.matches("demo: interrupted", fs.read(dir .. "/err") or "", 1, true)
    assert.matches("servers stopped, sandbox removed", text, 1, true)
    assert_nothing_left(text)
    h.cleanup()
  end)
end)

describe("make demo DEMO=deploy (demo/deploy.lua)", function()
  it("walks the deploy release-run through a raced health check, diagnosed and recovered, and removes its sandbox", function()
    local r = h.relua({ "demo/deploy.lua" }, { env = { NO_COLOR = "1", RELUA_DEMO_KEEP = false } })
    local o = r.stdout
    assert.are.equal(0, r.code, o .. r.stderr)
    local sandbox = o:match("== Setting up a throwaway sandbox in (%S+)")
    assert.is_truthy(sandbox, o)
    assert.matches("== 1. The operator runs the release for ticket 1234. The health check will fail.", o, 1, true)
    assert.matches("1. release-verify-race [confirmed]", o, 1, true)
    assert.matches("playbook release-verify-race: verified", o, 1, true)
    assert.matches("release 1234 done: all 4 phases done", o, 1, true)
    assert.matches("nothing to do: all 4 phases of ticket 1234 are done", o, 1, true)
    assert.matches("service stopped, sandbox removed", o, 1, true)
    assert.is_false(fs.exists(sandbox), "the sandbox is still there: " .. sandbox)
    for _, f in ipairs(fs.glob("/proc/[0-9]*/cmdline")) do  -- the service (svc.sh) is stopped
      local cmd = fs.read(f) or ""
      assert.is_nil(cmd:find(sandbox, 1, true), "still running: " .. cmd:gsub("%z", " "))
    end
  end)
end)
