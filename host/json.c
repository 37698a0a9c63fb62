/*
** json.c: the deterministic JSON encoder. Keys are sorted (bytewise), integers stay
** integers, floats are written in the shortest form that reads back the same, so files
** written by relua diff cleanly. Decoding is lua-cjson's (lib/relua/json.lua).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relua.h"

#define MAX_DEPTH 128
#define ARRAY_MT "relua.json.array"   /* marks a table as an array, even when empty */

/* Scratch output: a userdata owns the memory so an error cannot leak it. */
typedef struct Buf {
  char *p;
  size_t n, cap;
  lua_Alloc alloc;
  void *ud;
} Buf;

static void buf_free(Buf *b) {
  if (b->p != NULL) b->alloc(b->ud, b->p, b->cap, 0);
  b->p = NULL;
  b->cap = b->n = 0;
}

static int buf_gc(lua_State *L) {
  buf_free((Buf *)lua_touserdata(L, 1));
  return 0;
}

static void buf_grow(lua_State *L, Buf *b, size_t more) {
  size_t want = b->n + more, cap = b->cap ? b->cap : 256;
  char *p;
  if (want <= b->cap) return;
  while (cap < want) cap *= 2;
  p = (char *)b->alloc(b->ud, b->p, b->cap, cap);
  if (p == NULL) luaL_error(L, "json.encode: not enough memory");
  b->p = p;
  b->cap = cap;
}

static void put(lua_State *L, Buf *b, const char *s, size_t n) {
  buf_grow(L, b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

#define puts_(L, b, s) put(L, b, s, sizeof(s) - 1)

static void put_string(lua_State *L, Buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  buf_grow(L, b, n + 2);
  b->p[b->n++] = '"';
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      default: break;
    }
    if (esc != NULL) put(L, b, esc, 2);
    else if (c < 0x20 || c == 0x7f) {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(L, b, u, 6);
    } else {
      buf_grow(L, b, 1);
      b->p[b->n++] = (char)c;
    }
  }
  buf_grow(L, b, 1);
  b->p[b->n++] = '"';
}

static void put_number(lua_State *L, Buf *b, int idx) {
  char s[64];
  int len;
  if (lua_isinteger(L, idx)) {
    len = snprintf(s, sizeof s, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
  } else {
    double d = (double)lua_tonumber(L, idx);
    int prec;
    if (isnan(d) || isinf(d)) luaL_error(L, "json.encode: cannot encode %f", d);
    for (prec = 15; prec <= 17; prec++) {  /* shortest form that reads back the same */
      len = snprintf(s, sizeof s, "%.*g", prec, d);
      if (strtod(s, NULL) == d) break;
    }
    if (strpbrk(s, ".eEn") == NULL) {    /* keep it a float: 3.0, not 3 */
      s[len++] = '.';
      s[len++] = '0';
      s[len] = '\0';
    }
  }
  put(L, b, s, (size_t)len);
}

static void newline(lua_State *L, Buf *b, int pretty, int depth) {
  int i;
  if (!pretty) return;
  buf_grow(L, b, (size_t)(1 + 2 * depth));
  b->p[b->n++] = '\n';
  for (i = 0; i < 2 * depth; i++) b->p[b->n++] = ' ';
}

typedef struct Key {
  const char *s;
  size_t n;
} Key;

static int key_cmp(const void *a, const void *b) {
  const Key *x = (const Key *)a, *y = (const Key *)b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

/* Counts the keys of the table at idx; *array tells whether they are exactly 1..n. */
static size_t count_keys(lua_State *L, int idx, int *array) {
  size_t n = 0;
  lua_Integer max = 0;
  *array = 1;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    n++;
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
    } else
      *array = 0;
  }
  if ((lua_Integer)n != max) *array = 0;
  return n;
}

static int is_marked_array(lua_State *L, int idx) {
  int yes = 0;
  if (lua_getmetatable(L, idx)) {       /* [mt] */
    luaL_getmetatable(L, ARRAY_MT);     /* [mt, array_mt] */
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return yes;
}

static void encode(lua_State *L, Buf *b, int idx, int pretty, int depth);

static void encode_table(lua_State *L, Buf *b, int idx, int pretty, int depth) {
  int array;
  size_t i, n = count_keys(L, idx, &array);
  if (depth >= MAX_DEPTH)
    luaL_error(L, "json.encode: nested more than %d levels (a cycle?)", MAX_DEPTH);
  if (n == 0) {
    if (is_marked_array(L, idx)) puts_(L, b, "[]");
    else puts_(L, b, "{}");
    return;
  }
  luaL_checkstack(L, 4, "json.encode");
  if (array) {
    puts_(L, b, "[");
    for (i = 1; i <= n; i++) {
      if (i > 1) puts_(L, b, ",");
      newline(L, b, pretty, depth + 1);
      lua_rawgeti(L, idx, (lua_Integer)i);
      encode(L, b, lua_gettop(L), pretty, depth + 1);
      lua_pop(L, 1);
    }
    newline(L, b, pretty, depth);
    puts_(L, b, "]");
    return;
  }
  /* An object: string keys only, written in sorted order. The key strings stay alive
     because the table holds them. */
  {
    Key *keys = (Key *)lua_newuserdatauv(L, n * sizeof(Key), 0);  /* [keys] */
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING) {
        if (lua_type(L, -1) == LUA_TNUMBER)
          luaL_error(L, "json.encode: table mixes array items and keys (key %s)",
                     lua_tostring(L, -1));
        luaL_error(L, "json.encode: cannot encode a key of type %s", luaL_typename(L, -1));
      }
      keys[k].s = lua_tolstring(L, -1, &keys[k].n);
      k++;
    }
    qsort(keys, n, sizeof(Key), key_cmp);
    puts_(L, b, "{");
    for (i = 0; i < n; i++) {
      if (i > 0) puts_(L, b, ",");
      newline(L, b, pretty, depth + 1);
      put_string(L, b, keys[i].s, keys[i].n);
      if (pretty) puts_(L, b, ": ");
      else puts_(L, b, ":");
      lua_pushlstring(L, keys[i].s, keys[i].n);
      lua_rawget(L, idx);
      encode(L, b, lua_gettop(L), pretty, depth + 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);  /* keys */
    newline(L, b, pretty, depth);
    puts_(L, b, "}");
  }
}

static void encode(lua_State *L, Buf *b, int idx, int pretty, int depth) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: puts_(L, b, "null"); break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) puts_(L, b, "true");
      else puts_(L, b, "false");
      break;
    case LUA_TNUMBER: put_number(L, b, idx); break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      put_string(L, b, s, n);
      break;
    }
    case LUA_TTABLE: encode_table(L, b, idx, pretty, depth); break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {  /* cjson.null */
        puts_(L, b, "null");
        break;
      }
      /* FALLTHROUGH */
    default:
      luaL_error(L, "json.encode: cannot encode a %s", luaL_typename(L, idx));
  }
}

void relua_json_encode(lua_State *L, int idx, int pretty) {
  Buf *b;
  idx = lua_absindex(L, idx);
  b = (Buf *)lua_newuserdatauv(L, sizeof(Buf), 0);  /* [buf] */
  memset(b, 0, sizeof *b);
  b->alloc = lua_getallocf(L, &b->ud);
  if (luaL_newmetatable(L, "relua.json.Buf")) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  encode(L, b, idx, pretty, 0);
  lua_pushlstring(L, b->p, b->n);                  /* [buf, str] */
  buf_free(b);                                     /* now, not at the next collection */
  lua_remove(L, -2);                               /* [str] */
}

/* json.encode(value [, {pretty=bool}]) */
static int l_encode(lua_State *L) {
  int pretty = 0;
  luaL_checkany(L, 1);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  } else if (!lua_isnoneornil(L, 2))
    luaL_typeerror(L, 2, "table or nil");
  relua_json_encode(L, 1, pretty);
  return 1;
}

/* json.array([t]): marks t (or a new table) as an array, so an empty one writes []. */
static int l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  else luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, ARRAY_MT);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"encode", l_encode},
  {"array", l_array},
  {NULL, NULL}
};

int luaopen_relua_core_json(lua_State *L) {
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
