---@meta relua.git.Repository
-- The repository's primitives implemented in C (host/git.c); the methods written in Lua
-- (commit, branches, tags, push, ...) are in relua/git.lua's definitions.

---@class relua.git.Repository
local Repository = {}

--- Closes the repository (also on garbage collection and with `<close>`).
function Repository:close() end

--- The repository's .git folder.
---@return string
function Repository:path() end

--- The work tree, or nil for a bare repository.
---@return string?
function Repository:workdir() end

---@return boolean
function Repository:is_bare() end

--- HEAD: {id=, branch=, detached=, unborn=, ref=}.
---@return {id:string?, branch:string?, detached:boolean, unborn:boolean, ref:string?}|nil
---@return string? message
---@return string? code
function Repository:head() end

--- A revision (a SHA, a ref, `HEAD~2`, `v1.0^{commit}`) to its id (peeled to a commit).
---@param spec string
---@return string|nil id
---@return string? type_or_message
---@return string? code
function Repository:rev_parse(spec) end

--- The merge base of two revisions.
---@param a string
---@param b string
---@return string|nil id
---@return string? message
---@return string? code
function Repository:merge_base(a, b) end

--- Is a reachable from b (or equal to it)?
---@param a string
---@param b string
---@return boolean|nil
---@return string? message
---@return string? code
function Repository:is_ancestor(a, b) end

--- Moves HEAD (and the index, and the work tree for "hard") to rev.
---@param rev string
---@param mode "soft"|"mixed"|"hard"
---@return true|nil
---@return string? message
---@return string? code
function Repository:reset(rev, mode) end

--- A reference: {name=, id=, commit=, symbolic=}.
---@param name string
---@return {name:string, id:string, commit:string?, symbolic:string?}|nil
---@return string? message
---@return string? code
function Repository:ref(name) end

--- The remotes' names.
---@return string[]|nil
---@return string? message
---@return string? code
function Repository:remotes() end

--- A remote: {name=, url=, push_url=}.
---@param name string
---@return {name:string, url:string, push_url:string?}|nil
---@return string? message
---@return string? code
function Repository:remote(name) end

--- Adds a remote.
---@param name string
---@param url string
---@return true|nil
---@return string? message
---@return string? code
function Repository:remote_add(name, url) end

--- The names of the tags matching glob (default "*"), unsorted, read without touching any
--- object: the leanest listing of thousands of tags.
---@param glob string?
---@return string[]|nil names
---@return string? message
---@return string? code
function Repository:tag_names(glob) end

--- Moves the loose references into packed-refs (git pack-refs --all).
---@return true|nil
---@return string? message
---@return string? code
function Repository:pack_refs() end
