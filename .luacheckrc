-- luacheck's configuration (`make lint`): lib/, recipes/, playbooks/ and tests/.
std = "lua54"
max_line_length = 160
max_comment_line_length = false  -- LuaLS annotations (---@field x T description) are one line each
self = false                     -- a method need not use self
unused_secondaries = false      -- `local ok, msg, code = f()` keeps the shape of the result
-- `local guard <close> = x` is used by being closed when the scope ends
ignore = { "211/guard" }
-- the fuzz corpus holds fuzzer inputs (a leading byte picks the loader mode), not Lua
exclude_files = { "tests/npm/**", "tests/fuzz/corpus/**" }
files["tests"] = { std = "+busted" }
-- busted's assert has more fields than luacheck's busted std knows (are.same, matches, ...)
files["tests"].read_globals = { assert = { other_fields = true } }
