-- Writes the LuaLS type definitions (---@meta files) of relua's Lua modules from their
-- sources: every documented public function, field and class (a `---` comment block
-- followed by its declaration) is kept with its annotations; bodies and private code are
-- dropped. The recipe, phase, playbook and `r` shapes live in types/relua/recipe.lua.
-- usage: lua5.4 tools/types.lua OUTDIR lib/relua/x.lua ...
local outdir = arg[1]

local function module_name(path)
  return (path:gsub("^lib/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

local function convert(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  local name = module_name(path)
  local out = { "---@meta " .. name, "-- Generated from " .. path .. " by tools/types.lua: do not edit.", "" }
  local ret
  local doc = {}
  local function flush(decl)
    for _, d in ipairs(doc) do out[#out + 1] = d end
    out[#out + 1] = decl
    out[#out + 1] = ""
    doc = {}
  end
  local i = 1
  while i <= #lines do
    local l = lines[i]
    if l:match("^%-%-%-") then
      doc[#doc + 1] = l
    elseif #doc > 0 then
      local fname, params = l:match("^function ([%w_%.:]+)%((.-)%)")
      local lname, lparams = l:match("^local function ([%w_]+)%((.-)%)")
      local var, rhs = l:match("^local ([%w_]+) = (.*)$")
      local field, frhs = l:match("^([%w_]+%.[%w_%.]+) = (.*)$")
      if fname then
        flush("function " .. fname .. "(" .. params .. ") end")
      elseif lname then
        flush("local function " .. lname .. "(" .. lparams .. ") end")
      elseif var then
        flush("local " .. var .. " = " .. ((rhs:match("^%b{}$") or rhs == "{}") and rhs or "{}"))
      elseif field then
        local literal = frhs:match('^"[^"]*"$') or frhs:match("^%-?%d[%d%.]*$") or frhs:match("^%b{}$")
          or frhs == "true" or frhs == "false"
        flush(field .. " = " .. (literal and frhs or "nil"))
      else
        doc = {}
      end
    end
    if l:match("^local M = ") or l:match("^local M$") then out[#out + 1] = "local M = {}" out[#out + 1] = "" end
    local r = l:match("^return ([%w_]+)%s*$")
    if r then ret = r end
    i = i + 1
  end
  if ret then out[#out + 1] = "return " .. ret end
  return name, table.concat(out, "\n") .. "\n"
end

for i = 2, #arg do
  local name, text = convert(arg[i])
  local file = outdir .. "/" .. name:gsub("%.", "/") .. ".lua"
  os.execute("mkdir -p '" .. file:match("^(.*)/") .. "'")
  local f = assert(io.open(file, "w"))
  f:write(text)
  f:close()
end
