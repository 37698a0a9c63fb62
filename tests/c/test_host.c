/* C tests of the host's shared helpers: durable file replacement and the JSON encoder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lualib.h"
#include "relua.h"
#include "test.h"

int luaopen_relua_core_json(lua_State *L);

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *s;
  long n;
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  s = calloc(1, (size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
  fclose(f);
  return s;
}

static void test_write_atomic(void) {
  char dir[] = "/tmp/relua-ctest.XXXXXX", path[256], *s;
  struct stat st;
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/state.json", dir);
  CHECK(relua_write_atomic(path, "one", 3, 0600) == 0);
  s = slurp(path);
  CHECK(s != NULL && strcmp(s, "one") == 0);
  free(s);
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  /* replacing keeps the mode when none is given */
  CHECK(relua_write_atomic(path, "two", 3, -1) == 0);
  s = slurp(path);
  CHECK(s != NULL && strcmp(s, "two") == 0);
  free(s);
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  /* a folder that does not exist: -1, errno set, nothing left behind */
  snprintf(path, sizeof path, "%s/missing/state.json", dir);
  errno = 0;
  CHECK(relua_write_atomic(path, "x", 1, -1) == -1 && errno == ENOENT);
  snprintf(path, sizeof path, "%s/state.json", dir);
  unlink(path);
  CHECK(rmdir(dir) == 0);  /* fails if a temp file was left */
}

static void test_json(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "relua.core.json", luaopen_relua_core_json, 0);
  lua_pop(L, 1);
  CHECK(luaL_dostring(L, "return {z = 1, a = {2, 3.5}, m = 'x'}") == LUA_OK);
  relua_json_encode(L, -1, 0);
  CHECK(strcmp(lua_tostring(L, -1), "{\"a\":[2,3.5],\"m\":\"x\",\"z\":1}") == 0);
  lua_settop(L, 0);
  /* an error inside the encoder frees its scratch buffer (ASan would see a leak) */
  CHECK(luaL_dostring(L, "return require('relua.core.json').encode({a = {1, 2, print}})") != LUA_OK);
  lua_close(L);
}

int main(void) {
  test_write_atomic();
  test_json();
  return DONE();
}
