--- relua.store: which store the ledger and the controls live in, and `relua store copy`.
-- The store is chosen by --store=URL, else $RELUA_STORE, else the folder $RELUA_HOME (else
-- .relua): a path, folder:PATH or file://PATH is a folder store; postgres://... is the
-- shared PostgreSQL store. Everything a store does is C (host/store*.c, relua.core.store).
local core = require "relua.core.store"
local errors = require "relua.error"
local valid_ticket = require("relua.core.ledger").valid_ticket

local M = {}

--- The URL given with --store (set by the commands); nil: $RELUA_STORE or the folder.
M.url = nil

-- exit codes of the failures of opening a store
local EXIT = { usage = 2, unsupported = 2, corrupt = 2, locked = 3 }

--- Opens the store the command works with; raises a structured error when it cannot.
---@param home string?  a relua home folder (the specs' sandbox): its folder store, unless
---                     url names another; the phase outputs of a PostgreSQL store go there
---@param url string?   a store URL (overrides --store and $RELUA_STORE)
---@return userdata store relua.core.store.Store
function M.open(home, url)
  if home == "" then home = nil end
  if not url then
    url = M.url
    if home then url = "folder:" .. home end
  end
  local st, err, code = core.open(url, home)
  if not st then
    errors.raise(code or "store", err, { exit = EXIT[code] or 1,
      hint = code == "usage" and "set RELUA_STORE (or --store) to a folder or a postgres:// URL" or nil })
  end
  return st
end

--- relua's own folders on this machine, as absolute paths: the relua home ($RELUA_HOME,
--- else .relua: the phases' output files live there whatever the store) and the folder
--- store's, when one is used. A cleanliness check never counts what is in them.
---@return string[]
function M.own_folders()
  local fsc = require "relua.core.fs"
  local function abs(p)
    p = p:gsub("^file://", ""):gsub("^folder:", "")
    if p:sub(1, 1) ~= "/" then p = (fsc.cwd() or ".") .. "/" .. p end
    local parts = {}
    for seg in p:gmatch("[^/]+") do
      if seg == ".." then parts[#parts] = nil elseif seg ~= "." then parts[#parts + 1] = seg end
    end
    return "/" .. table.concat(parts, "/")
  end
  local home = os.getenv("RELUA_HOME")
  local out = { abs((home and home ~= "") and home or ".relua") }
  local url = M.url or os.getenv("RELUA_STORE")
  if url and url ~= "" and not url:match("^%a[%w+.-]*://") or (url and url:match("^file://")) then
    out[#out + 1] = abs(url)
  end
  return out
end

--- Raises the structured error of a failed store operation (nil, message, code).
---@param err string
---@param code string?
---@param hint string?
function M.fail(err, code, hint)
  errors.raise(code or "store", err, { exit = EXIT[code] or 1, hint = hint })
end

--- `relua store copy --to URL [TICKET...]`: copies tickets (state and audit log) from the
--- current store into another; a ticket the target already has is refused, not merged.
---@return integer
function M.copy_command(...)
  local args = { ... }
  local to, tickets = nil, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local v = a:match("^%-%-to=(.*)$")
    if v then to = v
    elseif a == "--to" then i = i + 1; to = args[i]
    elseif a:match("^%-%-store=") then M.url = a:match("^%-%-store=(.*)$")
    elseif a == "--store" then i = i + 1; M.url = args[i]
    elseif a:match("^%-") then errors.usage("unknown option " .. a)
    else tickets[#tickets + 1] = a end
    i = i + 1
  end
  if not to or to == "" then errors.usage("no target store given", "usage: relua store copy --to URL [TICKET...]") end
  local src = M.open()
  local dst, err, code = core.open(to)
  if not dst then M.fail(err, code) end
  if src:describe() == dst:describe() then
    errors.usage("the target store is the store the tickets are in (" .. src:describe() .. ")")
  end
  if #tickets == 0 then
    local all, lerr, lcode = src:tickets()
    if not all then M.fail(lerr, lcode) end
    tickets = all
  end
  local copied, failed = 0, 0
  for _, t in ipairs(tickets) do
    if not valid_ticket(t) then errors.usage(string.format("invalid ticket %q", t)) end
    local state, rerr, rcode = src:read(t)
    local ok, werr, wcode
    if not state then
      ok, werr, wcode = nil, rerr, rcode
    elseif src:holder(t) then
      ok, werr, wcode = nil, "a run holds it now: copy it once the run is over", "locked"
    else
      local events, eerr, ecode = src:events(t)
      if not events then ok, werr, wcode = nil, eerr, ecode
      else ok, werr, wcode = dst:import(t, state, events) end
    end
    if ok then
      copied = copied + 1
      io.stdout:write(string.format("copied %s to %s\n", t, dst:describe()))
    else
      failed = failed + 1
      io.stderr:write(string.format("relua: store copy: %s: %s\n", t, werr))
      if wcode == "EEXIST" then
        io.stderr:write("  the target keeps its own record of the ticket; nothing was merged\n")
      end
    end
  end
  io.stdout:write(string.format("%d copied, %d not copied (from %s)\n", copied, failed, src:describe()))
  return failed == 0 and 0 or 1
end

return M
