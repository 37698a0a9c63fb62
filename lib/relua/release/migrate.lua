--- relua store migrate: creates relua's schema in a PostgreSQL store, or upgrades an older
--- one to this relua's (host/store_pg.c keeps the schema and its versions; relua.core.store.migrate). The folder
--- store has no schema: its files are read as they are.
local errors = require "relua.error"

local M = {}

local HINT = "give the store with --store postgres://... or RELUA_STORE"

-- The store URL from --store URL / --store=URL, else $RELUA_STORE.
local function store_arg(args)
  local url
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--store" then
      url = args[i + 1]
      if url == nil then errors.usage("relua store migrate: --store needs a URL", HINT) end
      i = i + 2
    elseif a:match("^%-%-store=") then
      url = a:sub(9)
      i = i + 1
    else
      errors.usage("relua store migrate: unexpected argument: " .. a, HINT)
    end
  end
  return url or os.getenv("RELUA_STORE")
end

--- relua store migrate [--store URL] -> exit status
function M.migrate_command(...)
  local url = store_arg({ ... })
  if url == nil or url == "" then
    errors.usage("relua store migrate: no store given", HINT)
  end
  if not (url:match("^postgres://") or url:match("^postgresql://")) then
    errors.usage("relua store migrate: only a PostgreSQL store has a schema to migrate "
      .. "(the folder store's files need none)", HINT)
  end
  local found, now, code = require("relua.core.store").migrate(url)
  if not found then require("relua.store").fail(now, code) end
  local where = url:gsub("//([^/@:]*):[^/@]*@", "//%1@")
  if found == now then
    print(string.format("store %s: relua schema %d, nothing to do", where, now))
  elseif found == 0 then
    print(string.format("store %s: relua schema %d created", where, now))
  else
    print(string.format("store %s: relua schema upgraded from %d to %d", where, found, now))
  end
  return 0
end

return M
