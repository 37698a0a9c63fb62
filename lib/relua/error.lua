--- relua.error: structured errors.
-- Failures of the world come back from the primitives as `nil, message, code`. Where
-- carrying on would be wrong, the Lua layer raises a structured error instead: a table
-- `{code=, message=, hint=, exit=}` that prints as its message. The entry point shows
-- uncaught ones without a traceback and exits with their `exit` code (1 when absent).
local core = require "relua.core.error"

local M = {}

--- Exit statuses, as documented in the README.
M.EXIT = { ok = 0, failed = 1, usage = 2, refused = 3, interrupted = 130 }

---@class relua.Error
---@field code string     machine-readable reason, e.g. "ENOENT", "immutable", "usage"
---@field message string  what happened, naming the thing
---@field hint string?    what to do next
---@field exit integer?   the process exit status if nobody catches it

--- Makes a structured error without raising it.
---@param code string
---@param message string
---@param opts {hint:string?, exit:integer?}?
---@return relua.Error
function M.new(code, message, opts)
  local e = { code = code, message = message }
  if opts then
    for k, v in pairs(opts) do e[k] = v end
  end
  return core.new(e)
end

--- Raises a structured error.
---@param code string
---@param message string
---@param opts {hint:string?, exit:integer?}?
function M.raise(code, message, opts)
  error(M.new(code, message, opts), 0)
end

--- The usage of the command being run (set by relua.cli): the hint of a usage error
--- raised without one, so a missing argument prints the usage line.
---@type string?
M.usage_hint = nil

--- Raises a usage error (exit 2): bad command line, invalid recipe, bad input.
---@param message string
---@param hint string?  default: the running command's usage
function M.usage(message, hint)
  error(M.new("usage", message, { hint = hint or M.usage_hint, exit = M.EXIT.usage }), 0)
end

--- True when v is a structured error.
---@param v any
---@return boolean
M.is = core.is

--- Turns a `nil, message, code` result into a raised error; passes values through.
---@generic T
---@param v T
---@param message string?
---@param code string?
---@return T
function M.check(v, message, code, ...)
  if v == nil then M.raise(code or "error", message or "unknown error") end
  return v, message, code, ...
end

return M
