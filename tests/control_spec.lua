-- relua.control's rules, table-driven: each row is the records already written, the
-- record written next, the effect the rules give it and the lane's control afterwards
-- (doc/controls.md). Then record validation and admission.
local control = require "relua.control"

local A = string.rep("a", 40)
local B = string.rep("b", 40)
local C = string.rep("c", 40)

local function rec(kind, sha, reason, extra)
  local r = { v = 1, kind = kind, lane = "main", sha = sha, reason = reason, by = "ops", at = "2026-11-30T18:00:00Z" }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end
local function P(sha, reason, extra) return rec("pause", sha, reason, extra) end
local function U(sha, reason, extra) return rec("unpause", sha, reason, extra) end

-- A control in short: "running", "running recovery=A/ci", "paused A/ci,B/deploy".
local function short(c)
  local s = c.state
  if c.state == "paused" then
    local open = {}
    for _, p in ipairs(c.pauses) do open[#open + 1] = p.sha:sub(1, 1):upper() .. "/" .. p.reason end
    s = s .. " " .. table.concat(open, ",")
  elseif c.recovery then
    s = s .. " recovery=" .. c.recovery.sha:sub(1, 1):upper() .. "/" .. c.recovery.reason
  end
  return s
end

local RULES = {
  -- rule, before, next record, effect, control after
  { 1, {}, P(A, "ci"), "pauses", "paused A/ci" },
  { 2, { P(A, "ci"), U(A, "ci") }, P(A, "ci"), "ignored", "running recovery=A/ci" },   -- the seed's stale pause
  { 2, { P(A, "ci"), U(A, "ci"), P(B, "ci") }, P(A, "ci"), "ignored", "paused B/ci" },
  { 3, { P(A, "ci") }, P(A, "ci"), "ignored", "paused A/ci" },
  { 4, { P(A, "ci") }, P(A, "deploy"), "pauses", "paused A/ci,A/deploy" },
  { 4, { P(A, "ci"), U(A, "ci") }, P(B, "ci"), "pauses", "paused B/ci" },              -- another SHA
  { 4, { P(A, "ci"), U(A, "ci") }, P(A, "deploy"), "pauses", "paused A/deploy" },      -- another reason
  { 5, { P(A, "ci") }, U(A, "ci"), "resumes", "running recovery=A/ci" },
  { 5, { P(A, "ci"), P(B, "deploy") }, U(A, "ci"), "resumes", "paused B/deploy" },
  { 5, { P(A, "ci"), U(A, "ci"), P(B, "ci") }, U(B, "ci"), "resumes", "running recovery=B/ci" },
  { 6, {}, U(A, "ci"), "refused", "running" },
  { 6, { P(A, "ci") }, U(A, "deploy"), "refused", "paused A/ci" },
  { 6, { P(A, "ci") }, U(B, "ci"), "refused", "paused A/ci" },
  { 6, { P(A, "ci"), U(A, "ci") }, U(A, "ci"), "refused", "running recovery=A/ci" },
}

describe("relua.control rules", function()
  for i, row in ipairs(RULES) do
    local rule, before, nxt, effect, after = table.unpack(row)
    it(string.format("row %d (rule %d): %s %s/%s -> %s, %s", i, rule, nxt.kind, nxt.sha:sub(1, 1):upper(), nxt.reason, effect, after), function()
      local c = control.reconcile(before, "main")
      local got = control.effect(c, nxt)
      assert.are.equal(effect, got)
      local all = {}
      for _, r in ipairs(before) do all[#all + 1] = r end
      all[#all + 1] = nxt
      local c2 = control.reconcile(all, "main")
      assert.are.equal(after, short(c2))
      assert.are.equal(effect, c2.history[#c2.history].effect)
    end)
  end

  it("says why a pause is ignored, naming the unpause that resumed it", function()
    local c = control.reconcile({ P(A, "ci"), U(A, "ci", { by = "alice", at = "2026-11-30T18:05:00Z" }) })
    local effect, why = control.effect(c, P(A, "ci"))
    assert.are.equal("ignored", effect)
    assert.matches("restates the failure the unpause by alice at 2026%-11%-30T18:05:00Z resumed", why)
  end)
end)

describe("relua.control validation", function()
  it("accepts full SHAs only", function()
    assert.is_true(control.valid_sha(A))
    assert.is_true(control.valid_sha(string.rep("0", 64)))
    assert.is_false(control.valid_sha("abc123"))
    assert.is_false(control.valid_sha(string.rep("g", 40)))
    assert.is_false(control.valid_sha(A:upper()))  -- callers lower-case first
    assert.is_false(control.valid_sha(nil))
  end)

  it("refuses an empty reason, a multi-line one, and a bad lane", function()
    assert.is_false(control.valid_reason(""))
    assert.is_false(control.valid_reason("   "))
    assert.is_false(control.valid_reason("a\nb"))
    assert.is_true(control.valid_reason("ci-failed"))
    assert.is_false(control.valid_lane(""))
    assert.is_false(control.valid_lane("-main"))
    assert.is_false(control.valid_lane("../x"))
    assert.is_true(control.valid_lane("release-1.x"))
    assert.is_false(control.valid_lane("release/1.x"))
  end)

  local BAD = {
    { "not a table", "x", "not a record" },
    { "unknown kind", P(A, "ci", { kind = "stop" }), "unknown kind" },
    { "bad sha", P("abc", "ci"), "malformed sha" },
    { "empty reason", P(A, ""), "reason" },
    { "wrong lane", P(A, "ci", { lane = "dev" }), "listed under lane" },
    { "a field of the wrong type", P(A, "ci", { ignored = "yes" }), "field ignored is a string" },
    { "an ignored pause without why", P(A, "ci", { ignored = true }), "without why" },
    { "an ignored unpause", U(A, "ci", { ignored = true, why = "x" }), "never ignored" },
    { "unknown schema", P(A, "ci", { v = 2 }), "schema" },
    { "no time", P(A, "ci", { at = "yesterday" }), "invalid time" },
  }
  for _, row in ipairs(BAD) do
    it("refuses a stored record: " .. row[1], function()
      local ok, problem = control.check_record(row[2], "main")
      assert.is_nil(ok)
      assert.matches(row[3], problem, 1, true)
    end)
  end
end)

describe("relua.control admission", function()
  local function descends(graph)
    return function(anc, sha) return graph[anc .. ">" .. sha] or false end
  end
  local g = descends({ [A .. ">" .. B] = true })

  it("admits anything on a lane without controls", function()
    assert.is_true((control.admit(control.reconcile({}), { sha = C }, g)))
  end)

  it("refuses a paused lane, naming the pause and the unpause command", function()
    local ok, v = control.admit(control.reconcile({ P(A, "ci", { ticket = "T1" }) }), { sha = B }, g)
    assert.is_false(ok)
    assert.are.equal("paused", v.code)
    assert.matches("lane main is paused: ci", v.message, 1, true)
    assert.matches("SHA " .. A, v.message, 1, true)
    assert.matches("by ops at 2026-11-30T18:00:00Z", v.message, 1, true)
    assert.matches("relua unpause --lane main --sha " .. A .. " --reason ci", v.hint, 1, true)
  end)

  it("during a recovery admits descendants of the failed SHA only", function()
    local c = control.reconcile({ P(A, "ci", { ticket = "T1" }), U(A, "ci", { ticket = "T1" }) })
    assert.is_true((control.admit(c, { sha = B, ticket = "T2" }, g)))
    local ok, v = control.admit(c, { sha = A, ticket = "T2" }, g)
    assert.is_false(ok)
    assert.matches("is the failed SHA itself", v.message, 1, true)
    ok, v = control.admit(c, { sha = C, ticket = "T2" }, g)
    assert.is_false(ok)
    assert.matches("does not descend from it", v.message, 1, true)
    -- the ticket the recovery resumed is admitted (the wake resumes it)
    assert.is_true((control.admit(c, { sha = A, ticket = "T1" }, g)))
  end)

  it("admits what the recovery says: the failed SHA, or any", function()
    local c = control.reconcile({ P(A, "ci"), U(A, "ci", { admit = "failed" }) })
    assert.is_true((control.admit(c, { sha = A }, g)))
    assert.is_false((control.admit(c, { sha = C }, g)))
    c = control.reconcile({ P(A, "ci"), U(A, "ci", { admit = "any" }) })
    assert.is_true((control.admit(c, { sha = C }, g)))
  end)
end)
