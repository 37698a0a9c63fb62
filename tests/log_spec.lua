local log = require "relua.log"
local h = require "support.h"

-- Runs a snippet in a fresh relua with a clean log environment; returns {code, stdout, stderr}.
local function run(code, env)
  local e = { NO_COLOR = false, GITHUB_ACTIONS = false, RELUA_LOG_LEVEL = false, TERM = "xterm" }
  for k, v in pairs(env or {}) do e[k] = v end
  return h.relua({ "-e", 'local log = require "relua.log" ' .. code }, { env = e })
end

describe("relua.log", function()
  after_each(h.cleanup)

  it("formats logfmt fields sorted and quoted when needed", function()
    assert.are.equal('a=1 b="two words" c=true d="say \\"hi\\"" e="" f="x=y" g="l1\\nl2"',
      log.fields { g = "l1\nl2", f = "x=y", e = "", d = 'say "hi"', c = true, b = "two words", a = 1 })
    assert.are.equal("", log.fields {})
    assert.are.equal("", log.fields(nil))
    assert.has_error(function() log.fields("x") end)
  end)

  it("writes leveled lines to stderr, not stdout, without colour on a pipe", function()
    local r = run [[log.info("published", {version = "1.2.0", package = "wiki"}) log.warn("slow") log.error("failed", {rc = 2})]]
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
    assert.are.equal("info: published package=wiki version=1.2.0\nwarn: slow\nerror: failed rc=2\n", r.stderr)
  end)

  it("hides debug unless asked, and honours RELUA_LOG_LEVEL", function()
    local r = run [[log.debug("hidden") log.info("shown")]]
    assert.are.equal("info: shown\n", r.stderr)
    r = run([[log.debug("now shown", {n = 1})]], { RELUA_LOG_LEVEL = "debug" })
    assert.are.equal("debug: now shown n=1\n", r.stderr)
    r = run([[log.info("hidden") log.warn("shown")]], { RELUA_LOG_LEVEL = "warn" })
    assert.are.equal("warn: shown\n", r.stderr)
    r = run [[log.level("error") log.warn("hidden") log.error("shown")]]
    assert.are.equal("error: shown\n", r.stderr)
    assert.has_error(function() log.level("loud") end)
  end)

  it("uses colour on a terminal, and never with NO_COLOR", function()
    local cmd = string.format("script -qec %s /dev/null",
      h.quote(h.quote(h.root .. "/" .. h.bin:gsub("^%./", "")) .. [[ -e 'require("relua.log").warn("careful")']]))
    local r = h.sh(cmd, { env = { NO_COLOR = false, GITHUB_ACTIONS = false, TERM = "xterm" } })
    assert.matches("\27%[33mwarn\27%[0m: careful", r.stdout)
    r = h.sh(cmd, { env = { NO_COLOR = "1", GITHUB_ACTIONS = false, TERM = "xterm" } })
    assert.matches("warn: careful", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("\27", 1, true))
  end)

  it("turns warn and error into GitHub Actions annotations, and groups into ::group::", function()
    local r = run([[log.group("build") log.info("step", {n = 1}) log.warn("50% done\nnext") log.error("broke", {rc = 1}) log.endgroup()]],
      { GITHUB_ACTIONS = "true" })
    assert.are.equal("::group::build\ninfo: step n=1\n::warning::50%25 done%0Anext\n::error::broke rc=1\n::endgroup::\n", r.stderr)
  end)

  it("marks a group with a header line outside GitHub Actions", function()
    local r = run [[log.group("publish") log.info("x") log.endgroup()]]
    assert.are.equal("== publish\ninfo: x\n", r.stderr)
  end)

  it("refuses bad fields", function()
    assert.has_error(function() log.info("x", "not a table") end, "bad argument #2 to 'log.info' (table expected, got string)")
  end)
end)
