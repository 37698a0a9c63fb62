-- What the benchmarks share: the median of alternating rounds, and the line that reports
-- a scenario as a ratio against its baseline measured in the same run.
local M = {}

--- The median of a list of numbers (sorts the list).
---@param t number[]
---@return number
function M.median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

--- Prints `NAME: A_LABEL 12.300 ms vs B_LABEL 15.000 ms: ratio 0.82 (target <= 1.0) ok`.
--- a and b are seconds, shown in ms, unless unit is given (then shown as they are).
--- Without a target the ratio is information only.
---@param name string
---@param a_label string
---@param a number
---@param b_label string
---@param b number
---@param target number?
---@param unit string?
---@return number ratio
function M.report(name, a_label, a, b_label, b, target, unit)
  local ratio = a / b
  local scale = unit and 1 or 1000
  unit = unit or "ms"
  local verdict = target and string.format(" (target <= %.1f) %s", target, ratio <= target and "ok" or "over") or ""
  print(string.format("%s: %s %.3f %s vs %s %.3f %s: ratio %.2f%s", name, a_label, a * scale, unit,
    b_label, b * scale, unit, ratio, verdict))
  return ratio
end

--- Writes DIR/recipe.lua: 20 phases of 10 steps each, each phase also setting a state key
--- (the recipe of the no-op re-run benches: release_bench, store_pg_bench).
---@param dir string
function M.write_rerun_recipe(dir)
  local src = { "return { name = 'bench', phases = {" }
  for i = 1, 20 do
    src[#src + 1] = string.format([[
  { name = "phase%02d", run = function(r)
      for s = 1, 10 do r:step("p%d-step" .. s, function() return { n = s, sha = "%040d" } end) end
      r.state.P%d = "value %d"
    end },]], i, i, i, i, i)
  end
  src[#src + 1] = "}}"
  assert(require("relua.fs").write(dir .. "/recipe.lua", table.concat(src, "\n")))
end

--- run(argv [, store]): runs argv in dir (no RELUA_HOME; RELUA_STORE = store, default the
--- folder), raising when it exits non-zero; returns proc.run's result.
---@param dir string
---@return fun(argv:string[], store:string?):table
function M.runner(dir)
  return function(argv, store)
    local res = assert(require("relua.proc").run(argv, { cwd = dir, env = { RELUA_HOME = false, RELUA_STORE = store or false } }))
    if res.code ~= 0 then
      error("bench: " .. table.concat(argv, " ") .. " exited " .. tostring(res.code) .. ": " .. res.stderr)
    end
    return res
  end
end

return M
