/*
** ledger_crash.c: test-only fault injection. RELUA_TEST_CRASH_AT=<point>[:<n>] makes the
** process SIGKILL itself the n-th time (default 1st) it reaches <point>; <point>:<n>:INT
** sends SIGINT instead. It exists so that the suite can prove that a kill -9 (or a Ctrl-C)
** at that moment loses nothing. Never set it in real use.
**
** The points (see doc/recipes.md): phase-start, phase-end, phase-done, phase-failed,
** state-encode (a save begins), state-write (dies with the temp file half written),
** state-saved (after the state is durable, before its event), log-event (before an event
** is appended), step-before-record, step-after-record, and any name the Lua layer passes
** to lg:crash (step-run). The hit count lives in the registry: one per process.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"

int relua_store_crash_due(lua_State *L, const char *point) {
  const char *spec = getenv("RELUA_TEST_CRASH_AT");
  size_t n;
  long want = 1;
  lua_Integer hits;
  const char *colon;
  char *end = NULL;
  if (spec == NULL || *spec == '\0') return 0;
  colon = strchr(spec, ':');
  n = colon ? (size_t)(colon - spec) : strlen(spec);
  if (strlen(point) != n || strncmp(spec, point, n) != 0) return 0;
  if (colon) want = strtol(colon + 1, &end, 10);
  lua_getfield(L, LUA_REGISTRYINDEX, "relua.crash.hits");
  hits = lua_tointeger(L, -1) + 1;
  lua_pop(L, 1);
  lua_pushinteger(L, hits);
  lua_setfield(L, LUA_REGISTRYINDEX, "relua.crash.hits");
  if (hits != want) return 0;
  return colon && end != NULL && strcmp(end, ":INT") == 0 ? SIGINT : SIGKILL;
}

void relua_store_crash(lua_State *L, const char *point) {
  int sig = relua_store_crash_due(L, point);
  if (sig == 0) return;
  fflush(stdout);
  fflush(stderr);
  kill(getpid(), sig);
}

/* lg:crash(point) */
int ledger_l_crash(lua_State *L) {
  ledger_check(L, 1);
  relua_store_crash(L, luaL_checkstring(L, 2));
  return 0;
}
