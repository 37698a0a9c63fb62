/*
** json_fuzz.c: the strict JSON decoder (relua_json_decode, host/json.c).
** Properties: decoding never crashes; what decodes re-encodes (compact and pretty), and the
** encoding decodes again and re-encodes to the same bytes (the decoder and the encoder
** agree on everything the decoder accepts).
*/
#include "fuzz.h"

static int roundtrip(lua_State *L) {
  size_t n1, n2;
  const char *e1, *e2;
  /* [value] */
  relua_json_encode(L, 1, 0);                            /* [value, e1] */
  e1 = lua_tolstring(L, 2, &n1);
  FUZZ_CHECK(relua_json_decode(L, e1, n1, "re-encoded") == 1, "%s", lua_tostring(L, -2));
  relua_json_encode(L, 3, 0);                            /* [value, e1, v2, e2] */
  e2 = lua_tolstring(L, 4, &n2);
  FUZZ_CHECK(n1 == n2 && memcmp(e1, e2, n1) == 0, "%s != %s", e1, e2);
  relua_json_encode(L, 1, 1);                            /* pretty */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzMem m;
  lua_State *L = fuzz_state(&m);
  lua_pushcfunction(L, roundtrip);
  if (relua_json_decode(L, (const char *)data, size, "fuzz") == 1) {
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      /* an empty array decodes as {} (no metatable): the only accepted loss */
      FUZZ_CHECK(msg != NULL && strstr(msg, "not enough memory") != NULL, "%s", msg ? msg : "?");
    }
  } else {
    FUZZ_CHECK(lua_isstring(L, -2) && strncmp(lua_tostring(L, -2), "json.decode: fuzz: ", 19) == 0,
               "a refusal says what and where: %s", lua_tostring(L, -2));
  }
  lua_close(L);
  return 0;
}
