--- relua.cli.scaffold: `relua init`, a new project's starting point: a recipe copied from
-- one of the shipped ones (share/relua/recipes: the templates are whatever is shipped), a
-- playbooks/ folder, a .luarc.json pointing the editor at relua's type definitions, and
-- the ledger folder ignored by git. It writes nothing when any file it would write exists.
local errors = require "relua.error"
local fs = require "relua.fs"
local json = require "relua.json"
local version = require "relua.version"

local M = {}

M.DEFAULT = "release"

-- Other names of a shipped recipe: the deploy release-run ships as release.lua (`make demo
-- DEMO=deploy`), the release branch + PR one as release-branch-pr.lua. A recipe shipped
-- under the name itself wins.
M.ALIASES = { deploy = "release", ["release-branch"] = "release-branch-pr" }

--- The shared data folder, or a usage error saying where it was looked for.
local function datadir()
  local d = version.datadir()
  if not d then
    errors.usage("relua's shared data (the recipe templates) is not installed",
      "install relua with `make install`, or run the relua built in its source tree")
  end
  return d
end

--- The templates: the names of the shipped recipes, sorted.
---@return string[]
function M.templates()
  local names = {}
  for _, f in ipairs(fs.list(datadir() .. "/recipes") or {}) do
    local n = f:match("^(.+)%.lua$")
    if n then names[#names + 1] = n end
  end
  table.sort(names)
  return names
end

local function luarc(types)
  return json.encode({
    ["$schema"] = "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
    ["runtime.version"] = "Lua 5.4",
    ["workspace.library"] = json.array({ types }),
    ["workspace.checkThirdParty"] = false,
    ["diagnostics.globals"] = json.array(),
  }, { pretty = true }) .. "\n"
end

-- Does .gitignore already ignore the ledger folder?
local function ignores_ledger(text)
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local l = line:gsub("%s+$", "")
    if l == ".relua" or l == ".relua/" or l == "/.relua" or l == "/.relua/" then return true end
  end
  return false
end

--- `relua init [--template NAME] [DIR]`
---@return integer
function M.command(...)
  local args = { ... }
  local template, dir = M.DEFAULT, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    local v = a:match("^%-%-template=(.*)$")
    if v then template = v
    elseif a == "--template" then
      i = i + 1
      template = args[i] or errors.usage("--template needs a value")
    elseif a:sub(1, 1) == "-" then errors.usage("unknown option " .. a)
    elseif dir then errors.usage("unexpected argument " .. a)
    else dir = a end
    i = i + 1
  end
  dir = dir or "."
  local share = datadir()
  local names = M.templates()
  local src = share .. "/recipes/" .. template .. ".lua"
  if not fs.exists(src) and M.ALIASES[template] then src = share .. "/recipes/" .. M.ALIASES[template] .. ".lua" end
  if not fs.exists(src) or template:find("/", 1, true) then
    local also = {}
    for alias, name in pairs(M.ALIASES) do
      if fs.exists(share .. "/recipes/" .. name .. ".lua") then also[#also + 1] = alias .. " (" .. name .. ")" end
    end
    table.sort(also)
    errors.usage(string.format("unknown template %q", template), "the templates are " .. table.concat(names, ", ") ..
      (#also > 0 and ("; also " .. table.concat(also, ", ")) or ""))
  end
  local files = {
    { path = dir .. "/release.lua", data = assert(fs.read(src)) },
    { path = dir .. "/.luarc.json", data = luarc(share .. "/types") },
    { path = dir .. "/playbooks/README.md", data = table.concat({
      "# Recovery playbooks",
      "",
      "Playbooks for this project's releases go here: `relua diagnose TICKET` matches them",
      "against a failed phase and `relua recover TICKET` runs the one that fits. The shipped",
      "ones are in " .. share .. "/playbooks.",
      "" }, "\n") },
  }
  -- Refuse before writing anything.
  for _, f in ipairs(files) do
    if fs.exists(f.path) then
      errors.usage(string.format("%s exists: relua init writes nothing over an existing file", f.path),
        "move it away, or run relua init in another folder")
    end
  end
  local gitignore = dir .. "/.gitignore"
  local ignore_text = fs.read(gitignore)
  assert(fs.mkdir(dir .. "/playbooks"))
  for _, f in ipairs(files) do
    assert(fs.write(f.path, f.data))
    io.stdout:write("wrote ", f.path, "\n")
  end
  if not ignore_text then
    assert(fs.write(gitignore, "# the release ledger (relua): state and audit log of each ticket\n.relua/\n"))
    io.stdout:write("wrote ", gitignore, " (ignores the ledger folder .relua/)\n")
  elseif not ignores_ledger(ignore_text) then
    local sep = (ignore_text == "" or ignore_text:sub(-1) == "\n") and "" or "\n"
    assert(fs.append(gitignore, sep .. ".relua/\n"))
    io.stdout:write("added .relua/ to ", gitignore, "\n")
  end
  io.stdout:write(string.format("\nnext: edit %s/release.lua (template %s), then\n", dir, template),
    string.format("  relua check %s/release.lua\n  relua %s/release.lua 0.1.0 --dry-run\n", dir, dir))
  return 0
end

return M
