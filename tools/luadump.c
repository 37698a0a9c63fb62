/*
** luadump IN: writes IN precompiled (lua_dump, debug information kept: tracebacks still
** name the file and line) to stdout. Built against the liblua the binary links, so the
** bytecode tools/embed.lua carries into the binary is always that library's own format.
*/
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return fwrite(p, 1, n, (FILE *)ud) != n;
}

int main(int argc, char **argv) {
  lua_State *L;
  int rc = 0;
  if (argc != 2) {
    fprintf(stderr, "usage: luadump FILE.lua > FILE.luac\n");
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 1;
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "luadump: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else if (lua_dump(L, writer, stdout, 0) != 0 || fflush(stdout) != 0) {
    fprintf(stderr, "luadump: %s: write error\n", argv[1]);
    rc = 1;
  }
  lua_close(L);
  return rc;
}
