/*
** playbook_fuzz.c: the playbook loader, relua.playbook.parse(text, name)
** (lib/relua/playbook.lua, loaded from the tree with the host's C modules; `relua playbook
** lint|list`, diagnose and recover read every playbook through it). The first byte picks
** the format: YAML (the documented template; its decoder is host/yaml.c) or Lua (the
** chunk runs in a sandbox: no io, no os but its clocks, no new require, and an
** instruction budget). Properties: parse never raises (but for memory or the budget); it
** returns a list of playbooks, each with a string id, and a list of problems, each naming
** the file, a line >= 1 and a message.
*/
#include "fuzz.h"

#define MODULES(X) X(error) X(fs) X(json) X(ledger) X(proc) X(secret) X(store) X(version) X(yaml)
#define DECLARE(n) int luaopen_relua_core_##n(lua_State *L);
MODULES(DECLARE)

static const char SANDBOX[] =
  "local pb = require 'relua.playbook'\n"
  "require 'relua.yaml'\n"
  "local loaded, safe_os = package.loaded, { time = os.time, clock = os.clock, date = os.date,\n"
  "  getenv = os.getenv }\n"
  "os, io, dofile, loadfile = safe_os, nil, nil, nil\n"
  "package.loadlib, package.searchers = nil, {}\n"
  "require = function(name) return loaded[name] or error('fuzz: no new module: ' .. tostring(name)) end\n"
  "return pb.parse\n";

static lua_State *G = NULL;
static FuzzMem Gm;

static void budget(lua_State *L, lua_Debug *ar) {
  (void)ar;
  luaL_error(L, "fuzz: instruction budget spent");
}

static void load(void) {
  G = fuzz_state(&Gm);
  luaL_openlibs(G);
  luaL_getsubtable(G, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
#define PRELOAD(n) lua_pushcfunction(G, luaopen_relua_core_##n); lua_setfield(G, -2, "relua.core." #n);
  MODULES(PRELOAD)
  lua_pop(G, 1);
  lua_getglobal(G, "package");
  lua_pushliteral(G, "lib/?.lua");
  lua_setfield(G, -2, "path");
  lua_pop(G, 1);
  if (luaL_loadbuffer(G, SANDBOX, sizeof SANDBOX - 1, "=fuzz") != LUA_OK ||
      lua_pcall(G, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: cannot load lib/relua/playbook.lua (run from the repository root): %s\n",
            lua_tostring(G, -1));
    abort();
  }                                                     /* [parse] */
}

static int check(lua_State *L) {
  lua_Integer i, n;
  const char *name = lua_tostring(L, 3);
  /* [parse, text, name] */
  lua_call(L, 2, 2);                                    /* [list, problems] */
  FUZZ_CHECK(lua_istable(L, 1) && lua_istable(L, 2), "parse returned %s, %s",
             luaL_typename(L, 1), luaL_typename(L, 2));
  n = luaL_len(L, 1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    FUZZ_CHECK(lua_istable(L, -1), "playbook %d is a %s", (int)i, luaL_typename(L, -1));
    lua_getfield(L, -1, "id");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "playbook %d has no string id", (int)i);
    lua_pop(L, 2);
  }
  n = luaL_len(L, 2);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    lua_getfield(L, -1, "file");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0,
               "problem %d does not name the file", (int)i);
    lua_getfield(L, -2, "line");
    FUZZ_CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1, "problem %d: line %s",
               (int)i, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    lua_getfield(L, -2, "message");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "problem %d has no message", (int)i);
    lua_pop(L, 3);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *name;
  if (size == 0) return 0;
  if (G == NULL) load();
  name = (data[0] & 1) ? "fuzz.lua" : "fuzz.yaml";
  lua_pushcfunction(G, check);
  lua_pushvalue(G, 1);
  lua_pushlstring(G, (const char *)data + 1, size - 1);
  lua_pushstring(G, name);                              /* [parse, check, parse, text, name] */
  lua_sethook(G, budget, LUA_MASKCOUNT, 1000000);
  if (lua_pcall(G, 3, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(G, -1);
    FUZZ_CHECK(msg != NULL && (strstr(msg, "not enough memory") != NULL ||
                               strstr(msg, "fuzz: instruction budget spent") != NULL),
               "parse raised: %s", msg ? msg : "(an error object)");
  }
  lua_sethook(G, NULL, 0, 0);
  lua_settop(G, 1);
  return 0;
}
