-- Runs the relua binary on a pseudo-terminal (tests/support/pty_driver.py): send keys,
-- expect output, as a person at a terminal does.
local json = require "relua.json"
local h = require "support.h"

local M = {}

--- Runs a script of steps: {send=text} | {expect=python regex} | {sleep=s} | {wait_exit=true}.
---@param steps table[]
---@param opts {args:string[]?, env:table?, cwd:string?, timeout:number?}?
---@return {ok:boolean, failed:integer?, reason:string?, transcript:string, raw:string, exit:integer?}
function M.run(steps, opts)
  opts = opts or {}
  local bin = h.bin
  if bin:sub(1, 1) ~= "/" then bin = h.root .. "/" .. bin end
  local argv = { bin }
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local d = h.tmpdir()
  local path = h.spit(d .. "/script.json", json.encode({
    argv = argv, env = env, cwd = opts.cwd or h.root, steps = steps,
    timeout = opts.timeout or 15,
  }))
  local r = h.sh("python3 " .. h.quote(h.root .. "/tests/support/pty_driver.py") .. " " .. h.quote(path))
  local res, err = json.decode(r.stdout)
  assert(res, "the pty driver failed: " .. tostring(err) .. "\n" .. r.stderr)
  return res
end

--- A message for a failed run: why, and what the terminal showed.
function M.explain(res)
  return string.format("step %s: %s\n--- terminal ---\n%s\n--- exit %s", tostring(res.failed),
    tostring(res.reason), res.transcript, tostring(res.exit))
end

return M
