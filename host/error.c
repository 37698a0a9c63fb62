/*
** error.c: relua's structured errors. The Lua layer raises {code=, message=, hint=, exit=}
** tables where carrying on would be wrong; the entry point prints them without a traceback
** and exits with their `exit` code.
*/
#include <stdarg.h>

#include "relua.h"

static int err_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");  /* [err, message] */
  if (!lua_isstring(L, -1)) lua_pushliteral(L, "relua error");
  return 1;
}

/* Pushes the metatable of structured errors, creating it once. */
static void push_mt(lua_State *L) {
  if (luaL_newmetatable(L, RELUA_ERROR_MT)) {
    lua_pushcfunction(L, err_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

int relua_raise(lua_State *L, int exitcode, const char *code, const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 3);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, exitcode);
  lua_setfield(L, -2, "exit");
  push_mt(L);
  lua_setmetatable(L, -2);
  return lua_error(L);
}

void relua_error_mark(lua_State *L) {
  push_mt(L);
  lua_setmetatable(L, -2);
}

/* error.new(t): marks t as a structured error and returns it. */
static int err_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "message");
  luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field 'message' must be a string");
  lua_pop(L, 1);
  lua_settop(L, 1);
  push_mt(L);
  lua_setmetatable(L, 1);
  return 1;
}

/* error.is(v): true when v is a structured error. */
static int err_is(lua_State *L) {
  int is = 0;
  if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {  /* [v, mt] */
    push_mt(L);                                       /* [v, mt, Error] */
    is = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, is);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"new", err_new},
  {"is", err_is},
  {NULL, NULL}
};

int luaopen_relua_core_error(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
