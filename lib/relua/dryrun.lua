--- relua.dryrun: while a release runs with --dry-run, relua's own mutating primitives
--- only say what they would do.
-- The release engine calls phase functions inside `dryrun.call`. For that call, the
-- functions of relua.fs, relua.proc, relua.git, relua.http and the registry clients that
-- change something (a file, a process, a ref, a remote, a registry) print
-- `[dry-run] would ...` and return a stand-in instead of acting; reading functions work
-- as usual. Everything is put back when the call returns, even when it raised.
local M = {}

local active = nil   -- while a dry run is under way: the list of {table, key, original}

--- True while a dry run is under way.
---@return boolean
function M.active()
  return active ~= nil
end

local function shown(v)
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = tostring(v[i]) end
    return table.concat(parts, " ")
  end
  return tostring(v)
end

local function redact(url)
  return (tostring(url):gsub("^(%a[%w+.-]*://)[^/@]*@", "%1"))
end

local SAFE_METHODS = { GET = true, HEAD = true, OPTIONS = true }

local function ok() return true end
local function not_done(what)
  return function() return nil, "dry run: " .. what .. " was not done", "dry_run" end
end

local PROCESS = { code = 0, stdout = "", stderr = "", duration = 0, timed_out = false,
                  truncated = false, dry_run = true }
local function process() return setmetatable({}, { __index = PROCESS }) end

-- A stand-in for proc.spawn's handle: it never ran, and waiting says it succeeded.
local Spawned = {}
Spawned.__index = Spawned
function Spawned:pid() return 0 end
function Spawned:wait() return process() end
function Spawned:kill() return true end
function Spawned:close() end
Spawned.__close = Spawned.close

-- What each module's mutating functions say and give back in a dry run. `say` returns the
-- description, or nil when this call changes nothing (an HTTP GET) and may go through.
local function plan()
  local http_say = function(method)
    return function(url) return not SAFE_METHODS[method] and ("send " .. method .. " " .. redact(url)) or nil end
  end
  local request_say = function(req)
    local method = type(req) == "table" and (req.method or (req.body or req.body_file or req.form or req.json) and "POST" or "GET")
    if type(req) ~= "table" or SAFE_METHODS[tostring(method):upper()] then return nil end
    return "send " .. tostring(method):upper() .. " " .. redact(req.url)
  end
  return {
    ["relua.fs"] = {
      write = { function(p) return "write " .. tostring(p) end, ok },
      append = { function(p) return "append to " .. tostring(p) end, ok },
      mkdir = { function(p) return "create folder " .. tostring(p) end, ok },
      remove = { function(p, o) return "remove " .. tostring(p) .. ((o and o.recursive) and " and all it holds" or "") end, ok },
      copy = { function(a, b) return "copy " .. tostring(a) .. " to " .. tostring(b) end, ok },
    },
    ["relua.proc"] = {
      run = { function(argv) return "run: " .. shown(argv) end, process },
      sh = { function(cmd) return "run: " .. tostring(cmd) end, process },
      spawn = { function(argv) return "start: " .. shown(argv) end,
                function() return setmetatable({}, Spawned) end },
    },
    ["relua.git"] = {
      clone = { function(url, path) return "clone " .. redact(url) .. " into " .. tostring(path) end, not_done("the clone") },
      init = { function(path) return "create a repository at " .. tostring(path) end, not_done("the repository") },
    },
    ["relua.core.git"] = {
      Repository = {
        commit = { function(_, msg) return string.format("commit %q", tostring(msg)) end, not_done("the commit") },
        commit_tree = { function(_, msg) return string.format("write a commit object %q", tostring(msg)) end,
                        not_done("the commit") },
        reset = { function(_, rev, mode) return "reset (" .. tostring(mode or "mixed") .. ") to " .. tostring(rev) end, ok },
        checkout = { function(_, b) return "check out " .. tostring(b) end, ok },
        branch_create = { function(_, n, rev) return "create branch " .. tostring(n) .. " at " .. tostring(rev or "HEAD") end, ok },
        branch_delete = { function(_, n) return "delete branch " .. tostring(n) end, ok },
        tag = { function(_, n, rev) return "tag " .. tostring(rev or "HEAD") .. " as " .. tostring(n) end, ok },
        tag_delete = { function(_, n) return "delete tag " .. tostring(n) end, ok },
        pack_refs = { function() return "pack the references" end, ok },
        fetch = { function(_, remote) return "fetch from " .. tostring(remote or "origin") end, ok },
        push = { function(_, remote, specs) return "push " .. shown(specs) .. " to " .. tostring(remote) end, ok },
        push_delete_branch = { function(_, remote, n) return "delete branch " .. tostring(n) .. " on " .. tostring(remote) end, ok },
        push_delete_tag = { function(_, remote, n) return "delete tag " .. tostring(n) .. " on " .. tostring(remote) end, ok },
        remote_add = { function(_, n, url) return "add remote " .. tostring(n) .. " " .. redact(url) end, ok },
      },
    },
    ["relua.http"] = {
      request = { request_say, not_done("the request") },
      post = { http_say("POST"), not_done("the request") },
      put = { http_say("PUT"), not_done("the request") },
      patch = { http_say("PATCH"), not_done("the request") },
      delete = { http_say("DELETE"), not_done("the request") },
    },
    ["relua.registry.pypi"] = {
      publish = { function(path, o) return "publish " .. tostring(path) .. " to " .. redact(o and o.url) end,
                  function(path) return { status = "dry_run", filename = tostring(path):match("[^/]+$") } end },
      publish_all = { function(paths, o) return "publish " .. #paths .. " files to " .. redact(o and o.url) end,
                      function(paths)
                        local out = {}
                        for i, p in ipairs(paths) do out[i] = { status = "dry_run", filename = p:match("[^/]+$") } end
                        return out
                      end },
    },
    ["relua.registry.npm"] = {
      publish = { function(path, o)
                    return "publish " .. tostring(path) .. " to " .. redact(require("relua.registry.npm").registry_url(o))
                  end,
                  function() return { status = "dry_run" } end },
      tag = { function(name, version, tag) return "set dist-tag " .. tostring(tag) .. " of " .. tostring(name) .. " to " .. tostring(version) end,
              function() return { status = "dry_run" } end },
    },
  }
end

local function guard(list, t, spec, say)
  for name, how in pairs(spec) do
    local original = t[name]
    if type(how[1]) ~= "function" then
      if type(original) == "table" then guard(list, original, how, say) end
    elseif type(original) == "function" then
      local describe, stand_in = how[1], how[2]
      list[#list + 1] = { t, name, original }
      t[name] = function(...)
        local what = describe(...)
        if what == nil then return original(...) end
        say("  [dry-run] would " .. what)
        return stand_in(...)
      end
    end
  end
end

local function finish()
  for i = #active, 1, -1 do
    local t, name, original = table.unpack(active[i])
    t[name] = original
  end
  active = nil
end

--- Calls fn(...) with relua's mutating primitives in dry-run mode; returns what pcall
--- returns. The guarded modules are loaded first, so a phase that requires one during
--- the call gets the guarded table too.
---@param say fun(line:string) where the `[dry-run] would ...` lines go
---@param fn function
---@return boolean ok
---@return any ...
function M.call(say, fn, ...)
  if active then return pcall(fn, ...) end
  active = {}
  for name, spec in pairs(plan()) do
    local loaded, mod = pcall(require, name)
    if loaded and type(mod) == "table" then guard(active, mod, spec, say) end
  end
  local results = table.pack(pcall(fn, ...))
  finish()
  return table.unpack(results, 1, results.n)
end

return M
