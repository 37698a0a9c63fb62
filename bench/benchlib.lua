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

return M
