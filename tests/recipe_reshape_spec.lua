-- A recipe changed between two runs of a ticket (issue 9, item 11): it may gain phases and
-- fix code, but removing a recorded phase, reordering the recorded phases or putting a new
-- phase before a done one is shown and refused (exit 2) unless --accept-recipe-change,
-- whose use is logged. A refused run writes nothing.
local S = require "support.release"

-- A recipe whose phases are `names` (in that order); each appends its name to ran.txt and
-- a phase named in `failing` fails while the file `broken` exists.
local function recipe(names, failing)
  local parts = { "local function mark(k) local f = assert(io.open('ran.txt', 'a')) f:write(k, '\\n') f:close() end",
    "return { name = 'shape', phases = {" }
  for _, n in ipairs(names) do
    parts[#parts + 1] = string.format(
      "  { name = %q, run = function(r) mark(%q) %s end },", n, n,
      n == failing and "if io.open('broken') then error('" .. n .. " is broken') end" or "")
  end
  parts[#parts + 1] = "} }"
  return table.concat(parts, "\n")
end

-- Runs a, b, c with b failing: a done, b failed, c pending. Returns the sandbox, the
-- state's version and the log.
local function failed_at_b()
  local s = S.sandbox()
  s:write("release.lua", recipe({ "a", "b", "c" }, "b"))
  s:write("broken", "")
  local r = s:relua({ "release.lua", "T" })
  assert.are.equal(1, r.code, r.stdout .. r.stderr)
  os.remove(s:path("broken"))
  os.remove(s:path("ran.txt"))
  local _, version = s:state("T")
  return s, version, s:log_text("T")
end

local function refused(s, version, log, r)
  assert.are.equal(2, r.code, r.stdout .. r.stderr)
  assert.matches("the recipe changed the phases ticket T recorded", r.stderr)
  assert.matches("relua release%.lua T .*%-%-accept%-recipe%-change", r.stderr)
  assert.are.equal(version, select(2, s:state("T")), "the state was written")
  assert.are.equal(log, s:log_text("T"), "the log was written")
  assert.is_false(s:exists("ran.txt"), "a phase ran")
end

describe("a recipe that changes the recorded phases", function()
  after_each(S.cleanup)

  it("removing a failed phase is refused, naming it; the flag drops its record and logs it", function()
    local s, version, log = failed_at_b()
    s:write("release.lua", recipe({ "a", "c" }))
    local r = s:relua({ "release.lua", "T" })
    refused(s, version, log, r)
    assert.matches("phase b %(recorded failed%) is no longer in the recipe: its record would be dropped", r.stderr)
    assert.matches("relua release%.lua T %-%-accept%-recipe%-change", r.stderr)
    r = s:relua({ "release.lua", "T", "--dry-run" })
    refused(s, version, log, r)
    r = s:relua({ "release.lua", "T", "--accept-recipe-change" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("%-%-accept%-recipe%-change: the recipe's change to the recorded phases of ticket T is accepted", r.stdout)
    assert.same({ a = "done", c = "done" }, s:statuses("T"))
    assert.are.equal("c\n", s:read("ran.txt"))
    local line = s:log_text("T"):match("[^\n]*event=recipe%-change%-accepted[^\n]*")
    assert.truthy(line, s:log_text("T"))
    assert.matches("changes=\"phase b %(recorded failed%) is no longer in the recipe", line)
    assert.matches("event=phases%-removed phases=b", s:log_text("T"))
  end)

  it("reordering recorded phases is refused, showing both orders; the flag runs the new order", function()
    local s, version, log = failed_at_b()
    s:write("release.lua", recipe({ "b", "a", "c" }))
    local r = s:relua({ "release.lua", "T" })
    refused(s, version, log, r)
    assert.matches("the phases are in another order: recorded a, b, c; the recipe now has b, a, c", r.stderr)
    r = s:relua({ "release.lua", "T", "--from=b" })
    refused(s, version, log, r)
    assert.matches("relua release%.lua T %-%-from=b %-%-accept%-recipe%-change", r.stderr)
    r = s:relua({ "release.lua", "T", "--accept-recipe-change" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.equal("b\na\nc\n", s:read("ran.txt"))   -- a runs again: that is what was accepted
    assert.matches("event=recipe%-change%-accepted", s:log_text("T"))
  end)

  it("a new phase before a done one is refused; after it, or removing a pending one, is not", function()
    local s, version, log = failed_at_b()
    s:write("release.lua", recipe({ "new", "a", "b", "c" }))
    local r = s:relua({ "release.lua", "T" })
    refused(s, version, log, r)
    assert.matches("new phase new comes before phase a, which is done: a would run again", r.stderr)
    -- allowed without the flag: a new phase after the done ones, c (pending) removed
    s:write("release.lua", recipe({ "a", "new", "b" }))
    r = s:relua({ "release.lua", "T" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.are.equal("new\nb\n", s:read("ran.txt"))
    assert.same({ a = "done", new = "done", b = "done" }, s:statuses("T"))
    assert.is_nil(s:log_text("T"):match("recipe%-change%-accepted"))
    assert.matches("event=phases%-removed phases=c", s:log_text("T"))
  end)

  it("the help names the flag", function()
    local s = S.sandbox()
    local r = s:relua({ "help", "run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("%-%-accept%-recipe%-change", r.stdout)
  end)
end)
