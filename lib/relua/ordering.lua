--- relua.ordering: what relua.semver and relua.pep440 share around their own order of
-- versions: the three-way compare of two numbers or strings, the argument check (a parsed
-- version passes, a string is parsed, anything else or an invalid string raises at the
-- caller of the module's function), and the comparison operators built on the order.
local M = {}

--- -1, 0 or 1.
---@param x number|string
---@param y number|string
---@return integer
function M.cmp(x, y)
  if x == y then return 0 end
  return x < y and -1 or 1
end

--- The argument check of a version module: check(v, fname, i) returns v when it is a
--- version (metatable MT), else mod.parse(v) for a string; it raises at the caller of the
--- function that called it ("NAME.FNAME: bad argument #I ...", or parse's message).
---@param name string  the module's short name ("semver")
---@param MT table     the versions' metatable
---@param mod table    the module (its parse)
---@return fun(v:any, fname:string, i:integer):table
function M.checker(name, MT, mod)
  return function(v, fname, i)
    if getmetatable(v) == MT then return v end
    if type(v) ~= "string" then
      error(string.format("%s.%s: bad argument #%d (version expected, got %s)", name, fname, i, type(v)), 3)
    end
    local p, msg = mod.parse(v)
    if not p then error(msg, 3) end
    return p
  end
end

--- Sets MT's ==, < and <= from order(a, b) (-1, 0 or 1 over two parsed versions); < and <=
--- also take a version string on either side.
---@param MT table
---@param order fun(a:table, b:table):integer
---@param check fun(v:any, fname:string, i:integer):table
function M.operators(MT, order, check)
  MT.__eq = function(a, b) return order(a, b) == 0 end
  MT.__lt = function(a, b) return order(check(a, "lt", 1), check(b, "lt", 2)) < 0 end
  MT.__le = function(a, b) return order(check(a, "le", 1), check(b, "le", 2)) <= 0 end
end

return M
