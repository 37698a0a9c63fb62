-- Runs the busted specs inside the relua binary, so every spec exercises the real host.
-- usage: RELUA_BIN=./relua ./relua tests/run.lua [busted options] [spec files or folders]
-- Counts go to $RELUA_TEST_COUNTS when set (tests/run-all.sh sums them).
package.path = "tests/?.lua;" .. package.path
local args = { ... }
local has_path = false
for _, a in ipairs(args) do
  if a:sub(1, 1) ~= "-" then has_path = true end
end
local argv = { [0] = "tests/run.lua", "--output=tests/support/summary.lua", "--pattern=_spec%.lua$" }
for _, a in ipairs(args) do argv[#argv + 1] = a end
if not has_path then argv[#argv + 1] = "tests" end
_G.arg = argv
require("busted.runner")({ standalone = false })
