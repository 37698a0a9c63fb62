/*
** version.c: relua's version and the versions of the libraries it is built on.
** libgit2 and libcurl are lazy modules: lib/relua/version.lua requires them first, and
** their versions are then read from the loaded libraries (see relua_need_curl in aux.c).
*/
#include <dlfcn.h>

#include <curl/curl.h>

#include "relua.h"

/* version.libraries() -> libgit2 version or nil, libcurl version or nil */
static int l_libraries(lua_State *L) {
  void (*git_version)(int *, int *, int *);
  curl_version_info_data *(*curl_info)(CURLversion);
  *(void **)(&git_version) = dlsym(RTLD_DEFAULT, "git_libgit2_version");
  *(void **)(&curl_info) = dlsym(RTLD_DEFAULT, "curl_version_info");
  if (git_version != NULL) {
    int maj, min, rev;
    git_version(&maj, &min, &rev);
    lua_pushfstring(L, "%d.%d.%d", maj, min, rev);
  } else
    lua_pushnil(L);
  if (curl_info != NULL) lua_pushstring(L, curl_info(CURLVERSION_NOW)->version);
  else lua_pushnil(L);
  return 2;
}

static const luaL_Reg funcs[] = {
  {"libraries", l_libraries},
  {NULL, NULL}
};

int luaopen_relua_core_version(lua_State *L) {
  luaL_newlib(L, funcs);
  lua_pushliteral(L, RELUA_VERSION);
  lua_setfield(L, -2, "relua");
  lua_pushliteral(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_getfield(L, LUA_REGISTRYINDEX, RELUA_SELF_KEY);     /* the binary, when found */
  lua_setfield(L, -2, "self");
  lua_getfield(L, LUA_REGISTRYINDEX, RELUA_DATADIR_KEY);  /* share/relua compiled in */
  lua_setfield(L, -2, "datadir");
  return 1;
}
