/*
** json.c: the deterministic JSON encoder. Keys are sorted (bytewise), integers stay
** integers, floats are written in the shortest form that reads back the same, so files
** written by relua diff cleanly. Decoding is lua-cjson's (lib/relua/json.lua).
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relua.h"

#define MAX_DEPTH 1000   /* levels of nesting, for the encoder and the decoder alike */
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

/*
** Length of the valid UTF-8 sequence at s[0..n) (1-4), or 0 when it is not one: overlong
** forms, surrogates (U+D800..DFFF) and code points past U+10FFFF are invalid (RFC 3629).
*/
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len, i;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c < 0xc2) return 0;
  if (c < 0xe0) { len = 2; cp = c & 0x1f; }
  else if (c < 0xf0) { len = 3; cp = c & 0x0f; }
  else if (c < 0xf5) { len = 4; cp = c & 0x07; }
  else return 0;
  if (n < len) return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;
  return len;
}

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
    } else if (c < 0x80) {
      buf_grow(L, b, 1);
      b->p[b->n++] = (char)c;
    } else {
      size_t len = utf8_len((const unsigned char *)s + i, n - i);
      if (len == 0)
        luaL_error(L, "json.encode: a string is not valid UTF-8 (at byte %d): JSON holds "
                   "text only; store binary data as hex or base64", (int)i + 1);
      put(L, b, s + i, len);
      i += len - 1;
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
    if (isnan(d) || isinf(d))
      luaL_error(L, "json.encode: cannot encode %s: JSON has no NaN or Infinity",
                 isnan(d) ? "NaN" : d > 0 ? "inf" : "-inf");
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

/* ---------------------------------------------------------------- decoding */

typedef struct Dec {
  lua_State *L;
  const unsigned char *start, *p, *end;
  int depth;
} Dec;

/* Raises "WHAT at line L, column C" for the byte at pos (the caller adds the prefix). */
static int dec_fail(Dec *d, const unsigned char *pos, const char *what) {
  int line = 1, col = 1;
  const unsigned char *q;
  for (q = d->start; q < pos; q++) {
    if (*q == '\n') { line++; col = 1; }
    else col++;
  }
  return luaL_error(d->L, "%s at line %d, column %d", what, line, col);
}

/* What the byte at p is, for a message: 'x', end of text, or a byte value. */
static const char *dec_found(Dec *d, const unsigned char *p) {
  if (p >= d->end) return "the end of the text";
  if (*p == 0) return "a NUL byte";
  if (*p > 0x20 && *p < 0x7f) return lua_pushfstring(d->L, "'%c'", (int)*p);
  return lua_pushfstring(d->L, "byte 0x%02X", (unsigned)*p);
}

static void dec_expected(Dec *d, const char *what) {
  lua_pushfstring(d->L, "expected %s, found %s", what, dec_found(d, d->p));
  dec_fail(d, d->p, lua_tostring(d->L, -1));
}

static void skip_ws(Dec *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
    d->p++;
}

static int hex4(const unsigned char *p) {
  int i, v = 0;
  for (i = 0; i < 4; i++) {
    int c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static void add_utf8(luaL_Buffer *b, unsigned cp) {
  if (cp < 0x80) luaL_addchar(b, (char)cp);
  else if (cp < 0x800) {
    luaL_addchar(b, (char)(0xc0 | (cp >> 6)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    luaL_addchar(b, (char)(0xe0 | (cp >> 12)));
    luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
  } else {
    luaL_addchar(b, (char)(0xf0 | (cp >> 18)));
    luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
    luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
  }
}

/* A \uXXXX escape (d->p at the 'u'), a surrogate pair as one code point. */
static unsigned dec_unicode(Dec *d) {
  const unsigned char *at = d->p - 1;
  int hi = -1, lo = -1;
  if (d->end - d->p < 5 || (hi = hex4(d->p + 1)) < 0)
    dec_fail(d, at, "\\u needs four hex digits");
  d->p += 5;
  if (hi >= 0xdc00 && hi <= 0xdfff) dec_fail(d, at, "a lone low surrogate (\\uDC00-\\uDFFF)");
  if (hi < 0xd800 || hi > 0xdbff) return (unsigned)hi;
  if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' || (lo = hex4(d->p + 2)) < 0 ||
      lo < 0xdc00 || lo > 0xdfff)
    dec_fail(d, at, "a lone high surrogate (\\uD800-\\uDBFF not followed by a low one)");
  d->p += 6;
  return 0x10000u + (((unsigned)hi - 0xd800u) << 10) + ((unsigned)lo - 0xdc00u);
}

/* Pushes the string that starts at d->p ('"'). */
static void dec_string(Dec *d) {
  luaL_Buffer b;
  const unsigned char *open = d->p++, *q = d->p;
  /* Most strings are plain ASCII without escapes: pushed as they are. */
  while (q < d->end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\') q++;
  if (q < d->end && *q == '"') {
    lua_pushlstring(d->L, (const char *)d->p, (size_t)(q - d->p));
    d->p = q + 1;
    return;
  }
  luaL_buffinit(d->L, &b);
  for (;;) {
    const unsigned char *run = d->p;
    while (d->p < d->end && *d->p >= 0x20 && *d->p < 0x80 && *d->p != '"' && *d->p != '\\')
      d->p++;
    luaL_addlstring(&b, (const char *)run, (size_t)(d->p - run));
    if (d->p >= d->end) dec_fail(d, open, "a string is not closed");
    if (*d->p == '"') break;
    if (*d->p == '\\') {
      unsigned char e = d->p + 1 < d->end ? d->p[1] : 0;
      const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *hit;
      d->p += 2;
      if (e == 'u') {
        d->p--;
        add_utf8(&b, dec_unicode(d));
      } else if (e != 0 && (hit = strchr(from, e)) != NULL) {
        luaL_addchar(&b, to[hit - from]);
      } else
        dec_fail(d, d->p - 2, "an invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
    } else if (*d->p < 0x20) {
      dec_fail(d, d->p, *d->p == 0 ? "a NUL byte in a string (write it as \\u0000)"
                                  : "a control character in a string (escape it: \\n, \\t, \\u00XX)");
    } else {
      size_t len = utf8_len(d->p, (size_t)(d->end - d->p));
      if (len == 0) dec_fail(d, d->p, "invalid UTF-8 in a string");
      luaL_addlstring(&b, (const char *)d->p, len);
      d->p += len;
    }
  }
  d->p++;
  luaL_pushresult(&b);
}

static int is_digit(const unsigned char *p, const unsigned char *end) {
  return p < end && *p >= '0' && *p <= '9';
}

/* Pushes the number at d->p: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static void dec_number(Dec *d) {
  lua_State *L = d->L;
  const unsigned char *start = d->p, *p = d->p, *end = d->end;
  if (*p == '-') p++;
  if (!is_digit(p, end)) {
    d->p = p;
    dec_expected(d, "a digit");
  }
  if (*p == '0') {
    p++;
    if (is_digit(p, end)) dec_fail(d, start, "a number with a leading zero");
  } else
    while (is_digit(p, end)) p++;
  if (p < end && *p == '.') {
    p++;
    if (!is_digit(p, end)) dec_fail(d, start, "a number needs digits after its '.'");
    while (is_digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!is_digit(p, end)) dec_fail(d, start, "a number needs digits in its exponent");
    while (is_digit(p, end)) p++;
  }
  if (p < end && (isalnum(*p) || *p == '.' || *p == '+' || *p == '-'))
    dec_fail(d, start, "a malformed number (JSON has no hex, NaN or Infinity)");
  lua_pushlstring(L, (const char *)start, (size_t)(p - start));   /* [text] */
  if (lua_stringtonumber(L, lua_tostring(L, -1)) == 0)              /* [text, n] */
    dec_fail(d, start, "a malformed number");
  lua_remove(L, -2);
  if (!lua_isinteger(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    lua_Integer i;
    if (isinf(n)) dec_fail(d, start, "a number too large for a double (more than 1.8e308)");
    if (floor(n) == n && lua_numbertointeger(n, &i)) {   /* 3.0 reads back as 3 */
      lua_pop(L, 1);
      lua_pushinteger(L, i);
    }
  }
  d->p = p;
}

static void dec_literal(Dec *d, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0 ||
      ((size_t)(d->end - d->p) > n && isalnum(d->p[n])))
    dec_expected(d, "a value");
  d->p += n;
}

static void dec_value(Dec *d);

static void dec_open(Dec *d) {
  if (++d->depth > MAX_DEPTH) dec_fail(d, d->p, "nested too deeply (more than 1000 levels)");
  luaL_checkstack(d->L, 6, "json.decode: nested too deeply");
  d->p++;
  skip_ws(d);
}

static void dec_array(Dec *d) {
  lua_State *L = d->L;
  lua_Integer i = 0;
  dec_open(d);
  lua_newtable(L);                                       /* [arr] */
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    d->depth--;
    return;
  }
  for (;;) {
    dec_value(d);                                        /* [arr, v] */
    lua_rawseti(L, -2, ++i);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') break;
    if (d->p >= d->end || *d->p != ',') dec_expected(d, "',' or ']'");
    d->p++;
    skip_ws(d);
  }
  d->p++;
  d->depth--;
}

static void dec_object(Dec *d) {
  lua_State *L = d->L;
  dec_open(d);
  lua_createtable(L, 0, 4);  /* [obj]: room for a few keys, not a rehash at each of them */
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    d->depth--;
    return;
  }
  for (;;) {
    const unsigned char *at = d->p;
    if (d->p >= d->end || *d->p != '"') dec_expected(d, "a string key");
    dec_string(d);                                       /* [obj, key] */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL) {
      lua_pushfstring(L, "a duplicate key \"%s\"", lua_tostring(L, -2));
      dec_fail(d, at, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    skip_ws(d);
    if (d->p >= d->end || *d->p != ':') dec_expected(d, "':'");
    d->p++;
    skip_ws(d);
    dec_value(d);                                        /* [obj, key, v] */
    lua_rawset(L, -3);
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') break;
    if (d->p >= d->end || *d->p != ',') dec_expected(d, "',' or '}'");
    d->p++;
    skip_ws(d);
  }
  d->p++;
  d->depth--;
}

static void dec_value(Dec *d) {
  if (d->p >= d->end) dec_expected(d, "a value");
  switch (*d->p) {
    case '{': dec_object(d); break;
    case '[': dec_array(d); break;
    case '"': dec_string(d); break;
    case 't': dec_literal(d, "true"); lua_pushboolean(d->L, 1); break;
    case 'f': dec_literal(d, "false"); lua_pushboolean(d->L, 0); break;
    case 'n': dec_literal(d, "null"); lua_pushlightuserdata(d->L, NULL); break;
    case 'N': case 'I':
      dec_fail(d, d->p, "NaN and Infinity are not JSON");
      break;
    default:
      if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) dec_number(d);
      else dec_expected(d, "a value");
  }
}

/* Under lua_pcall: (lightuserdata text, integer length) -> value */
static int decode_protected(lua_State *L) {
  Dec d;
  d.L = L;
  d.start = d.p = (const unsigned char *)lua_touserdata(L, 1);
  d.end = d.start + lua_tointeger(L, 2);
  d.depth = 0;
  lua_settop(L, 0);
  if (d.end - d.p >= 3 && memcmp(d.p, "\xEF\xBB\xBF", 3) == 0)
    dec_fail(&d, d.p, "a byte order mark (JSON text starts without one)");
  skip_ws(&d);
  if (d.p >= d.end) dec_fail(&d, d.p, "no value (the text is empty)");
  dec_value(&d);
  skip_ws(&d);
  if (d.p < d.end) {
    lua_pushfstring(L, "%s after the value", dec_found(&d, d.p));
    dec_fail(&d, d.p, lua_tostring(L, -1));
  }
  return 1;
}

int relua_json_decode(lua_State *L, const char *s, size_t len, const char *name) {
  int status;
  luaL_checkstack(L, 4, "json.decode");
  lua_pushcfunction(L, decode_protected);
  lua_pushlightuserdata(L, (void *)s);
  lua_pushinteger(L, (lua_Integer)len);
  status = lua_pcall(L, 2, 1, 0);                        /* [value | message] */
  if (status == LUA_OK) return 1;
  if (status != LUA_ERRRUN) lua_error(L);                /* out of memory: raise */
  lua_pushfstring(L, "json.decode: %s: %s", name != NULL ? name : "input",
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_remove(L, -2);
  lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushliteral(L, "EJSON");
  return 3;
}

/* json.decode(text [, name]) -> value | nil, message, "EJSON" */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "input");
  return relua_json_decode(L, s, len, name);
}

static const luaL_Reg funcs[] = {
  {"encode", l_encode},
  {"decode", l_decode},
  {"array", l_array},
  {NULL, NULL}
};

int luaopen_relua_core_json(lua_State *L) {
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
