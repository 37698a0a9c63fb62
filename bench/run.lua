-- make bench: runs every bench/*_bench.lua in order. Each prints its scenarios as ratios
-- against a baseline measured in the same run (these machines are noisy).
package.path = "bench/?.lua;tests/?.lua;" .. package.path
local names = {}
for name in io.popen("ls bench"):lines() do
  if name:match("_bench%.lua$") then names[#names + 1] = name end
end
table.sort(names)
local failed = 0
for _, name in ipairs(names) do
  print("== " .. name:gsub("_bench%.lua$", ""))
  local ok, err = pcall(dofile, "bench/" .. name)
  if not ok then
    failed = failed + 1
    print("bench failed: " .. tostring(err))
  end
end
if #names == 0 then print("no benchmarks yet") end
os.exit(failed == 0 and 0 or 1)
