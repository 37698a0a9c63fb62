/*
** state_fuzz.c: the state-file loader, ledger_decode_state (host/ledger_state.c): every
** read of a ticket's state goes through it (a run, relua status/list, Store:read).
** Properties: any bytes give either a state table, or nil, a message naming the file and
** "corrupt" (never a crash or another error); a state it accepts is one the core's writer
** would write: it passes the shape check of every write, the check of its phases (for the
** hand-edit warning) can be computed, and encoded (as the store writes it) it is accepted
** again.
*/
#include "fuzz.h"

int ledger_decode_state(lua_State *L, int idx, const char *where, const char *ticket);
const char *ledger_check_shape(lua_State *L, int idx, const char *ticket);
const char *ledger_push_phases_digest(lua_State *L, int idx);

static int load(lua_State *L) {
  int n;
  const char *why;
  size_t len;
  /* [text] */
  n = ledger_decode_state(L, 1, "fuzz.json", NULL);
  if (n != 1) {
    FUZZ_CHECK(n == 3 && lua_isnil(L, -3), "a refusal is nil, message, code (%d values)", n);
    FUZZ_CHECK(strcmp(lua_tostring(L, -1), "corrupt") == 0, "code %s", lua_tostring(L, -1));
    FUZZ_CHECK(strncmp(lua_tostring(L, -2), "the state file fuzz.json ", 25) == 0,
               "a refusal names the file: %s", lua_tostring(L, -2));
    return 0;
  }
  /* [text, state] */
  why = ledger_check_shape(L, 2, NULL);
  FUZZ_CHECK(why == NULL, "an accepted state fails the write check: %s", why);
  lua_getfield(L, 2, "phases");
  ledger_push_phases_digest(L, -1);                        /* raises: the property fails */
  lua_settop(L, 2);
  relua_json_encode(L, 2, 1);                              /* [text, state, doc] */
  lua_tolstring(L, 3, &len);
  n = ledger_decode_state(L, 3, "re-encoded", NULL);
  FUZZ_CHECK(n == 1, "a state read, written back, is refused: %s", lua_tostring(L, -2));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzMem m;
  lua_State *L = fuzz_state(&m);
  lua_pushcfunction(L, load);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    FUZZ_CHECK(msg != NULL && strstr(msg, "not enough memory") != NULL, "the loader raised: %s",
               msg ? msg : "(an error object)");
  }
  lua_close(L);
  return 0;
}
