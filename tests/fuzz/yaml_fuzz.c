/*
** yaml_fuzz.c: the YAML decoder (relua.core.yaml, host/yaml.c, over libyaml).
** Properties: decoding a document or a stream never crashes and stays within the node
** budget; a failure is nil, "yaml.decode: fuzz:LINE:COLUMN: ...", "EYAML"; what decodes
** can be walked whole (the JSON encoder walks it: an alias bomb or a cycle would not end).
*/
#include "fuzz.h"

int luaopen_relua_core_yaml(lua_State *L);
int luaopen_relua_core_json(lua_State *L);

static int walk(lua_State *L) {
  relua_json_encode(L, 1, 0);   /* may refuse (a non-string key, a NaN): a Lua error */
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzMem m;
  int all;
  lua_State *L = fuzz_state(&m);
  luaL_requiref(L, "relua.core.json", luaopen_relua_core_json, 0);   /* the array metatable */
  luaL_getmetatable(L, "relua.json.array");                         /* [json, mt] */
  luaL_requiref(L, "relua.core.yaml", luaopen_relua_core_yaml, 0);   /* [json, mt, yaml] */
  for (all = 0; all <= 1; all++) {
    int top = lua_gettop(L);
    lua_getfield(L, 3, "decode");
    lua_pushlstring(L, (const char *)data, size);
    lua_pushliteral(L, "fuzz");
    lua_pushboolean(L, all);
    lua_pushvalue(L, 2);
    if (lua_pcall(L, 4, 3, 0) != LUA_OK) {                           /* only memory may raise */
      const char *msg = lua_tostring(L, -1);
      FUZZ_CHECK(msg != NULL && strstr(msg, "not enough memory") != NULL, "raised: %s", msg ? msg : "?");
    } else if (lua_isnil(L, -3)) {
      FUZZ_CHECK(lua_isstring(L, -2) && strncmp(lua_tostring(L, -2), "yaml.decode: fuzz:", 18) == 0,
                 "a failure names the input: %s", lua_tostring(L, -2));
      FUZZ_CHECK(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "EYAML") == 0, "code EYAML");
    } else {
      lua_pushcfunction(L, walk);
      lua_pushvalue(L, -4);
      (void)lua_pcall(L, 1, 1, 0);
    }
    lua_settop(L, top);
  }
  lua_close(L);
  return 0;
}
