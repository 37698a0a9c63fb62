-- The state file and r.state are strict JSON (issue 9, item 10): what relua reads is
-- RFC 8259, and what JSON cannot hold is refused when a recipe assigns it.
local S = require "support.release"

local function esc(s) return (s:gsub("%p", "%%%0")) end

local ONE = 'return { phases = { { name = "prepare", run = function(r) r.state.N = 1 end } } }\n'

describe("a state file that is not strict JSON", function()
  after_each(S.cleanup)

  local base = '{"schema": 1, "ticket": "5", "recipe": {"path": "/x"}, "phases": [{"name": "prepare", "status": "done"}], "state": {"N": %s}}'
  local bad = {
    { "NaN", "NaN", "NaN and Infinity are not JSON" },
    { "Infinity", "Infinity", "NaN and Infinity are not JSON" },
    { "a hex number", "0x10", "a malformed number" },
    { "a leading zero", "007", "a leading zero" },
    { "1e400", "1e400", "too large for a double" },
    { "invalid UTF-8", '"\255"', "invalid UTF%-8" },
    { "bytes after a NUL", '1}}\0{"x": 1', "a NUL byte after the value" },
  }
  for _, c in ipairs(bad) do
    it("is refused with exit 2, its path and line, and left untouched: " .. c[1], function()
      local s = S.sandbox()
      s:write("release.lua", ONE)
      local text = base:format(c[2])
      if c[1] == "bytes after a NUL" then text = base:format("1"):sub(1, -3) .. c[2] end
      s:write(".relua/releases/5.json", text)
      for _, args in ipairs({ { "release.lua", "5" }, { "status", "5" } }) do
        local r = s:relua(args)
        assert.are.equal(2, r.code, table.concat(args, " ") .. ": " .. r.stderr)
        assert.matches(esc(".relua/releases/5.json") .. " does not parse: .*" .. c[3] .. ".* at line 1, column %d+", r.stderr)
        assert.are.equal(text, s:read(".relua/releases/5.json"))
      end
    end)
  end
end)

describe("r.state", function()
  after_each(S.cleanup)

  it("refuses at assignment, at the recipe's line, what JSON cannot hold; the state keeps its value", function()
    local s = S.sandbox()
    s:write("release.lua", [[
return { phases = { { name = "prepare", run = function(r)
  r.state.ok = "fine"
  for _, v in ipairs({ "\255\254", 0 / 0, math.huge, -math.huge, { name = "x\192\128" } }) do
    local ok, err = pcall(function() r.state.ok = v end)
    print(ok, err)
  end
  r.state.bin = "a\255"
  print("not reached")
end } } }
]])
    local r = s:relua({ "release.lua", "5" })
    assert.are.equal(1, r.code)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do if l:match("^false") then lines[#lines + 1] = l end end
    assert.are.equal(5, #lines, r.stdout)
    assert.matches("release%.lua:4: r%.state%.ok: .*not valid UTF%-8 %(at byte 1%).*store binary data as hex or base64", lines[1])
    assert.matches("r%.state%.ok: .*cannot encode NaN: JSON has no NaN or Infinity", lines[2])
    assert.matches("cannot encode inf", lines[3])
    assert.matches("cannot encode %-inf", lines[4])
    assert.matches("not valid UTF%-8", lines[5])
    assert.matches("release%.lua:7: r%.state%.bin: .*not valid UTF%-8", r.stderr)
    assert.is_nil(r.stdout:find("not reached"))
    local st = s:state("5")
    assert.are.equal("fine", st.state.ok)
    assert.is_nil(st.state.bin)
    assert.are.equal("failed", st.phases[1].status)
    assert.are.equal(0, s:relua({ "status", "5" }).code)   -- the file still reads back
  end)
end)
