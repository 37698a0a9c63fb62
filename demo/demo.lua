-- make demo: a showcase of what the host can do today (the release engine grows it).
local json = require "relua.json"
local version = require "relua.version"
print("relua " .. version.relua .. " on " .. version.lua_release ..
  ", libgit2 " .. version.libgit2 .. ", libcurl " .. version.libcurl)
print("A state file as relua writes it (sorted keys, integers kept):")
print(json.encode({ ticket = "1234", phases = { { name = "prepare", status = "done", rc = 0 } } }, { pretty = true }))
