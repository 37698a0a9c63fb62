-- A cancellation wins over the recipe (issue 9, items 3 and 5): a phase whose code catches
-- Ctrl-C or SIGTERM with pcall still fails with 130/143 and nothing after it runs; os.exit
-- inside a phase fails the phase instead of ending relua with the recipe's exit code.
local h = require "support.h"
local S = require "support.release"

-- The phase catches everything its sleep raises, then marks that it carried on.
local SWALLOW = [[
local function mark(k) local f = assert(io.open("ran.txt", "a")) f:write(k, "\n") f:close() end
return { phases = {
  { name = "deploy", run = function(r)
      local ok, err = pcall(function() r:sh("echo started > started.txt; exec sleep 60") end)
      mark("after-pcall")
      while true do pcall(function() end) end   -- and would never return
    end },
  { name = "verify", run = function() mark("verify") end },
} }
]]

local function signalled(s, sig)
  return h.sh(h.quote(S.bin()) .. [[ release.lua T >out 2>err & pid=$!
    for i in $(seq 200); do [ -s started.txt ] && break; sleep 0.05; done
    kill -]] .. sig .. [[ $pid; wait $pid]], { cwd = s.dir, env = { RELUA_HOME = false } }).code
end

describe("a cancellation a phase's code catches", function()
  after_each(S.cleanup)

  for _, c in ipairs({ { "TERM", 143 }, { "INT", 130 } }) do
    it("SIG" .. c[1] .. ": the phase fails rc=" .. c[2] .. ", nothing after it runs, exit " .. c[2], function()
      local s = S.sandbox()
      s:write("release.lua", SWALLOW)
      local code = signalled(s, c[1])
      assert.are.equal(c[2], code, s:read("err"))
      assert.is_false(s:exists("ran.txt"), "code after the caught cancellation ran: " .. s:read("ran.txt"))
      local st = s:state("T")
      assert.are.equal("failed", st.phases[1].status)
      assert.are.equal(c[2], st.phases[1].rc)
      assert.are.equal("pending", st.phases[2].status)
      assert.matches("release interrupted in phase deploy %(rc=" .. c[2] .. "%)", s:read("err"))
    end)
  end
end)

describe("os.exit inside a phase", function()
  after_each(S.cleanup)

  for _, code in ipairs({ 0, 3 }) do
    it("os.exit(" .. code .. ") fails the phase clearly; relua exits 1, not " .. code, function()
      local s = S.sandbox()
      s:write("release.lua", ([[
return { phases = {
  { name = "deploy", run = function(r) r.state.X = 1 os.exit(CODE) end },
  { name = "verify", run = function(r) r.state.V = 1 end },
} }
]]):gsub("CODE", code))
      local r = s:relua({ "release.lua", "T" })
      assert.are.equal(1, r.code, r.stderr)
      assert.matches("phase deploy failed: os%.exit%(" .. code .. "%) called inside a phase: a phase ends by returning", r.stderr)
      local st = s:state("T")
      assert.are.equal("failed", st.phases[1].status)
      assert.are.equal("pending", st.phases[2].status)
      assert.is_nil(st.state.V)
    end)
  end

  it("still ends a plain script with its code", function()
    local s = S.sandbox()
    s:write("s.lua", "os.exit(3)")
    assert.are.equal(3, s:relua({ "s.lua" }).code)
  end)
end)
