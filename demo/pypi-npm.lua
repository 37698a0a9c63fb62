-- make demo: the PyPI + npm recipe (recipes/pypi-npm.lua) in a throwaway sandbox, breaking
-- half-way and recovered, the way an operator would live it. Real servers on 127.0.0.1,
-- started and stopped here: the project's git repository over smart HTTP (lighttpd +
-- git-http-backend), an npm registry (verdaccio), a PyPI index and a GitHub-API stand-in
-- for the forge release (tests/support/). The actual relua binary runs every command:
--   1. the release: npm is published, then the PyPI index goes down half-way (after the
--      wheel, during the sdist): the run stops at pypi-publish, past the point of no return
--   2. relua status, 3. relua diagnose (names the playbook pypi-npm-pypi-partial),
--   4. relua recover while the index is still down (its verify refuses to resume),
--   5. the index comes back: relua recover resumes, only the missing file is uploaded,
--   6. a re-run from the build: every artifact reported skipped_existing, nothing sent twice,
--   then the audit log. Whatever happens (a failure, Ctrl-C), every server is stopped and
--   the sandbox removed.
-- RELUA_DEMO_KEEP=1 keeps the checkout and the ledger (the servers are stopped anyway).
-- RELUA_DEMO_QUIET=1 prints the narration and the commands but not their output (the spec).
package.path = "demo/?.lua;tests/?.lua;" .. package.path
local fs = require "relua.fs"
local proc = require "relua.proc"
local reg = require "support.registries"
local githttp = require "support.githttp"
local gitfix = require "support.gitfix"
local W = require "support.pypinpm"
local narrate = require "narrate"
local out, say, tell = narrate.out, narrate.say, narrate.tell

local RELUA = fs.abspath(arg and arg[-1] or "./relua")
local RECIPE = fs.abspath("recipes/pypi-npm.lua")
local TICKET = "7"
local QUIET = os.getenv("RELUA_DEMO_QUIET") == "1"

-- ---------------------------------------------------------------- servers and project
local S = {}        -- the servers: git, pypi, npm, forge
local P             -- the project (tests/support/pypinpm.lua)
local pypi_home     -- the PyPI index's files: kept across its outage

local function stop_all()
  for _, k in ipairs({ "forge", "npm", "pypi" }) do
    if S[k] then S[k].stop(); S[k] = nil end
  end
  if S.git then S.git:stop(); S.git = nil end
  if pypi_home then fs.remove(pypi_home, { recursive = true }); pypi_home = nil end
end

-- A demo expectation: when it does not hold, the demo stops (exit 1) saying what it saw.
local function check(cond, fmt, ...)
  if not cond then error({ message = string.format("demo: " .. fmt, ...), exit = 1 }, 0) end
end

-- Runs relua in a checkout (default: the project's), shows the command (after `prefix`,
-- the settings shown) and, unless quiet, its output; the exit status must be `expect`.
local function relua(args, expect, where, prefix, silent)
  where = where or P
  local shown = { "relua" }
  for i, a in ipairs(args) do shown[i + 1] = a == RECIPE and "recipes/pypi-npm.lua" or a end
  if not silent then out("\n$ " .. (prefix or "") .. table.concat(shown, " ") .. "\n") end
  local argv = { RELUA }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local res = assert(proc.run(argv, { cwd = where.dir, env = where.env, echo = not (QUIET or silent), timeout = 300 }))
  check(res.code == expect, "expected exit status %d from %s, got %s\n%s%s", expect, table.concat(shown, " "),
    tostring(res.code), res.stdout, res.stderr)
  return res
end

local function npm_versions()
  return table.concat(P.npm_versions(P.npm_name), ", ") .. " / " .. table.concat(P.npm_versions(P.npm_name2), ", ")
end

local function pypi_index_up(restart)
  local opts = { storage = pypi_home }
  if restart then opts.port, opts.password = restart.port, restart.password end
  S.pypi = reg.pypi(opts)
end

local function main()
  say("Setting up a throwaway sandbox: four servers on 127.0.0.1 and a project")
  pypi_home = assert(fs.tmpdir("relua-demo-pypi-"))
  S.git = githttp.start({ user = "relua", password = "s3cret-git" })
  pypi_index_up()
  S.npm = reg.verdaccio()
  S.forge = reg.forge()
  P = W.project(S)
  P.env.NO_COLOR = os.getenv("NO_COLOR") or false
  tell("git     " .. S.git:url(""):gsub("/$", "") .. "  lighttpd + git-http-backend (smart HTTP)",
       "npm     " .. S.npm.url .. "  verdaccio",
       "PyPI    " .. S.pypi.url .. "  a PyPI-compatible index",
       "forge   " .. S.forge.url .. "  a GitHub API stand-in (CI status, releases)",
       "",
       "The project (" .. P.dir .. ", cloned from the git server):",
       "a Python package " .. P.py_name .. " and two npm packages, " .. P.npm_name .. " and " .. P.npm_name2 .. ",",
       "last released as v1.0.0; one fix was merged since. CI is green.",
       "recipes/pypi-npm.lua releases it: gate -> prepare (version, tag) -> build -> npm-publish",
       "-> pypi-publish -> forge-release -> finalize (main back to X.Y.Z+dev). Its settings come",
       "from PYPI_NPM_* variables (listed at the top of the recipe), pointing here at the sandbox.",
       "Every command below runs in the project's checkout; recipes/pypi-npm.lua is relua's copy.")

  -- The fault: the index lets the first upload through (the wheel), then goes down while
  -- the second (the sdist) is being sent: its process exits, connections are refused.
  S.pypi.fail({ action = "exit", prefix = "/legacy/", count = 1, skip = 1 })

  say("1. The release of ticket %s (a CI run id, say). The PyPI index will go down half-way.", TICKET)
  local first = relua({ RECIPE, TICKET }, 1)
  check((first.stderr .. first.stdout):find("pypi-npm-pypi-partial", 1, true), "the failed run named no matching playbook")
  local held = P.pypi_files()
  tell("", "What happened: the tag v1.0.1 was pushed, npm got 1.0.1 of both packages (" .. npm_versions() .. "),",
       "PyPI got " .. #held .. " file(s) (" .. table.concat(held, ", ") .. ") and then went down during the next upload.",
       "relua halted at pypi-publish: the forge release and finalize did not run. npm 1.0.1 is",
       "out and immutable, so this is past the point of no return: no roll-back is offered, the",
       "way out is forward. relua already names the playbook that matches.")

  say("2. Where does ticket %s stand? relua status reads its state (the failure record included).", TICKET)
  relua({ "status", TICKET }, 0)

  say("3. relua diagnose runs the matching playbooks' checks, changes nothing, and ranks them.")
  local diag = relua({ "diagnose", TICKET }, 0)
  check(diag.stdout:find("pypi-npm-pypi-partial [confirmed]", 1, true), "diagnose did not confirm pypi-npm-pypi-partial")

  say("4. relua recover applies it: fix, verify, and only then resume. The index is still down:")
  tell("(--yes: there is nobody to ask in a demo; on a terminal relua shows the plan and asks)")
  relua({ "recover", TICKET, "--yes" }, 1)
  tell("", "The verify step failed (the index does not answer), so nothing was resumed and the ticket",
       "stays failed and resumable. Nothing was sent anywhere.")

  say("5. The PyPI index is back (same address, the files it held). relua recover again:")
  local gone = S.pypi
  gone.stop()
  pypi_index_up(gone)
  relua({ "recover", TICKET, "--yes" }, 0)
  local uploads = S.pypi.uploads()
  tell("", string.format("Since it came back, the index received %d upload(s): only the file it lacked. npm was not", uploads),
       "published again; the forge release was made and main moved to 1.0.1+dev.")
  check(uploads == 2 - #held, "the index received %d uploads after its outage, expected %d", uploads, 2 - #held)

  say("6. The same version again from another CI runner: a fresh clone and no ledger.")
  tell("PYPI_NPM_VERSION=1.0.1 asks for that version: the tag is reused, the rebuild of the",
       "same tag is byte-identical, and every artifact is already where it belongs.")
  local runner = { dir = gitfix.tmpdir() .. "/runner2", env = {} }
  gitfix.git("/", "clone", "-q", P.authed, runner.dir)
  gitfix.git(runner.dir, "remote", "set-url", "origin", P.url)
  for k, v in pairs(P.env) do runner.env[k] = v end
  runner.env.RELUA_HOME = gitfix.tmpdir() .. "/relua-home"
  runner.env.PYPI_NPM_VERSION = "1.0.1"
  P.ci("success")  -- CI passed on main's new head (the 1.0.1+dev commit): the gate asks
  local sent = { S.npm.publishes(), S.pypi.uploads(), S.forge.stats().uploads }
  local again = relua({ RECIPE, TICKET }, 0, runner, "PYPI_NPM_VERSION=1.0.1 ")
  check(S.npm.publishes() == sent[1] and S.pypi.uploads() == sent[2] and S.forge.stats().uploads == sent[3],
    "the re-run sent something to a registry")

  say("The summary: every artifact, on every registry, skipped_existing (relua status %s, its publish table).", TICKET)
  local st = relua({ "status", TICKET }, 0, runner, nil, true)
  local table_lines, skipped = {}, 0
  for line in st.stdout:gmatch("[^\n]+") do
    if line == "publish:" then table_lines[1] = line
    elseif table_lines[1] and line:match("^  ") then table_lines[#table_lines + 1] = line
    elseif table_lines[1] then break end
    if table_lines[1] and line:find("skipped_existing", 1, true) then skipped = skipped + 1 end
  end
  out(table.concat(table_lines, "\n") .. "\n")
  check(skipped == 8 and #table_lines == 10, "expected 8 artifacts skipped_existing, got:\n%s%s", st.stdout, again.stdout)

  say("The audit log of ticket %s on the first runner: one line per event, append-only.", TICKET)
  out("\n$ relua log " .. TICKET .. " | grep -v event=state\n")
  for line in relua({ "log", TICKET }, 0, P, nil, true).stdout:gmatch("[^\n]+") do
    if not line:find("event=state", 1, true) then out(line .. "\n") end
  end

  check(P.main_version() == "1.0.1+dev", "main says %s, not 1.0.1+dev", tostring(P.main_version()))
  check(#P.pypi_files() == 2 and npm_versions() == "1.0.1 / 1.0.1", "the registries do not hold v1.0.1 whole")
  say("Done: v1.0.1 is on npm, PyPI and the forge, main says 1.0.1+dev, and nothing was sent twice.")
end

local ok, err = xpcall(main, function(e)
  if type(e) == "table" then return e end
  return debug.traceback(tostring(e), 2)
end)
stop_all()
if os.getenv("RELUA_DEMO_KEEP") == "1" and P then
  print("\nservers stopped; kept (RELUA_DEMO_KEEP): the checkout " .. P.dir .. ", the ledger " .. P.home)
else
  gitfix.cleanup()
  print("\nservers stopped, sandbox removed (RELUA_DEMO_KEEP=1 keeps the checkout and the ledger)")
end
if not ok then
  local interrupted = type(err) == "table" and (err.code == "interrupted" or err.exit == 130 or err.exit == 143)
  io.stderr:write(interrupted and "demo: interrupted" or tostring(type(err) == "table" and err.message or err), "\n")
  os.exit(type(err) == "table" and err.exit or 1)
end
