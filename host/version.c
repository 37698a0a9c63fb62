/*
** version.c: relua's version and the versions of the libraries it is built on.
*/
#include <stdio.h>

#include <curl/curl.h>
#include <git2.h>

#include "relua.h"

static void push_git_version(lua_State *L) {
  int maj, min, rev;
  git_libgit2_version(&maj, &min, &rev);
  lua_pushfstring(L, "%d.%d.%d", maj, min, rev);
}

int luaopen_relua_core_version(lua_State *L) {
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, RELUA_VERSION);
  lua_setfield(L, -2, "relua");
  lua_pushliteral(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  push_git_version(L);
  lua_setfield(L, -2, "libgit2");
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_setfield(L, -2, "libcurl");
  return 1;
}
