/*
** crypto.c: digests and base64 (relua.core.crypto), all through OpenSSL's libcrypto.
** File digests stream in 64 KiB reads, so a file of any size costs constant memory.
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "relua.h"

#define CTX_MT "relua.crypto.Context"
#define CHUNK 65536

/*
** The algorithm named at idx. Each is fetched from the provider once and kept for the
** life of the process: OpenSSL 3 fetches an implicit EVP_sha256() again at every
** EVP_DigestInit_ex, which costs more than hashing a small file.
*/
static const EVP_MD *pick(lua_State *L, int idx) {
  static const char *const names[] = {"sha256", "sha512", "sha1", "md5", NULL};
  static const EVP_MD *fetched[4];
  int i = luaL_checkoption(L, idx, NULL, names);
  if (fetched[i] == NULL) fetched[i] = EVP_MD_fetch(NULL, names[i], NULL);
  if (fetched[i] != NULL) return fetched[i];
  switch (i) {  /* no provider offers it explicitly: the implicit fetch */
    case 0: return EVP_sha256();
    case 1: return EVP_sha512();
    case 2: return EVP_sha1();
    default: return EVP_md5();
  }
}

/* Pushes the digest in the format at idx: "hex" (default), "base64" or "raw". */
static void push_formatted(lua_State *L, const unsigned char *md, unsigned int n, int idx) {
  static const char *const formats[] = {"hex", "base64", "raw", NULL};
  int f = luaL_checkoption(L, idx, "hex", formats);
  if (f == 2) lua_pushlstring(L, (const char *)md, n);
  else if (f == 0) {
    static const char digits[] = "0123456789abcdef";
    char hex[2 * EVP_MAX_MD_SIZE];
    unsigned int i;
    for (i = 0; i < n; i++) {
      hex[2 * i] = digits[md[i] >> 4];
      hex[2 * i + 1] = digits[md[i] & 15];
    }
    lua_pushlstring(L, hex, 2 * n);
  } else {
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int len = EVP_EncodeBlock(b64, md, (int)n);
    lua_pushlstring(L, (const char *)b64, (size_t)len);
  }
}

/* The digest context and the file live in a userdata, so a raise cannot leak them. */
typedef struct Ctx {
  EVP_MD_CTX *md;
  int fd;
} Ctx;

static void ctx_release(Ctx *c) {
  if (c->md != NULL) EVP_MD_CTX_free(c->md);
  if (c->fd >= 0) close(c->fd);
  c->md = NULL;
  c->fd = -1;
}

static int ctx_gc(lua_State *L) {
  ctx_release((Ctx *)luaL_checkudata(L, 1, CTX_MT));
  return 0;
}

static Ctx *new_ctx(lua_State *L) {
  Ctx *c = (Ctx *)lua_newuserdatauv(L, sizeof(Ctx), 0);
  c->md = NULL;
  c->fd = -1;
  luaL_setmetatable(L, CTX_MT);
  return c;
}

/* digest_file(path, algo [, format]) -> string | nil, msg, code */
static int c_digest_file(lua_State *L) {
  static const char *const formats[] = {"hex", "base64", "raw", NULL};
  const char *path = luaL_checkstring(L, 1);
  const EVP_MD *type = pick(L, 2);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  char buf[CHUNK];
  int ok;
  Ctx *c;
  luaL_checkoption(L, 3, "hex", formats);
  lua_settop(L, 3);
  c = new_ctx(L);                                  /* [path, algo, format, c] */
  c->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (c->fd < 0) return relua_oserror(L, "fs.digest", path);
  c->md = EVP_MD_CTX_new();
  ok = c->md != NULL && EVP_DigestInit_ex(c->md, type, NULL) == 1;
  while (ok) {
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      ctx_release(c);
      errno = err;
      return relua_oserror(L, "fs.digest", path);
    }
    if (r == 0) break;
    ok = EVP_DigestUpdate(c->md, buf, (size_t)r) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(c->md, md, &n) == 1;
  ctx_release(c);
  if (!ok) return relua_fail(L, "EIO", "fs.digest: %s: libcrypto failed", path);
  push_formatted(L, md, n, 3);
  return 1;
}

/*
** digests_file(path, {algo = format, ...}) -> {algo = digest, ...} | nil, msg, code
** Every digest from one read of the file (a 1 GB upload reads its file once for all).
*/
#define MAX_ALGOS 4
typedef struct Multi {
  EVP_MD_CTX *md[MAX_ALGOS];
  int fd;
} Multi;

static void multi_release(Multi *m) {
  int i;
  for (i = 0; i < MAX_ALGOS; i++) {
    if (m->md[i] != NULL) EVP_MD_CTX_free(m->md[i]);
    m->md[i] = NULL;
  }
  if (m->fd >= 0) close(m->fd);
  m->fd = -1;
}

static int multi_gc(lua_State *L) {
  multi_release((Multi *)luaL_checkudata(L, 1, CTX_MT ".multi"));
  return 0;
}

static int c_digests_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int n = 0, i, ok = 1;
  Multi *m;
  char buf[CHUNK];
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  m = (Multi *)lua_newuserdatauv(L, sizeof(Multi), 0);  /* [path, algos, m] */
  memset(m, 0, sizeof *m);
  m->fd = -1;
  luaL_setmetatable(L, CTX_MT ".multi");
  lua_newtable(L);                                      /* [path, algos, m, names] */
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {                         /* [.., names, algo, format] */
    const EVP_MD *type;
    lua_pop(L, 1);
    if (n == MAX_ALGOS) return luaL_argerror(L, 2, "at most 4 digests at once");
    type = pick(L, -1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 4, n + 1);
    m->md[n] = EVP_MD_CTX_new();
    if (m->md[n] == NULL || EVP_DigestInit_ex(m->md[n], type, NULL) != 1) ok = 0;
    n++;
  }
  m->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (m->fd < 0) return relua_oserror(L, "fs.digests", path);
  while (ok) {
    ssize_t r = read(m->fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      multi_release(m);
      errno = err;
      return relua_oserror(L, "fs.digests", path);
    }
    if (r == 0) break;
    for (i = 0; i < n && ok; i++) ok = EVP_DigestUpdate(m->md[i], buf, (size_t)r) == 1;
  }
  lua_newtable(L);                                      /* [path, algos, m, names, out] */
  for (i = 0; i < n && ok; i++) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ok = EVP_DigestFinal_ex(m->md[i], md, &len) == 1;
    if (!ok) break;
    lua_rawgeti(L, 4, i + 1);                           /* [.., out, algo] */
    lua_pushvalue(L, -1);
    lua_gettable(L, 2);                                 /* [.., out, algo, format] */
    push_formatted(L, md, len, lua_gettop(L));          /* [.., out, algo, format, digest] */
    lua_remove(L, -2);
    lua_settable(L, 5);
  }
  multi_release(m);
  if (!ok) return relua_fail(L, "EIO", "fs.digests: %s: libcrypto failed", path);
  return 1;
}

/* hash(data, algo [, format]) -> string */
static int c_hash(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  const EVP_MD *type = pick(L, 2);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data, len, md, &n, type, NULL) != 1)
    return luaL_error(L, "fs.hash: libcrypto failed");
  push_formatted(L, md, n, 3);
  return 1;
}

/* base64(data) -> string */
static int c_base64(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  size_t out = 4 * ((len + 2) / 3);
  char *p;
  int n;
  luaL_argcheck(L, len <= 0x5ffffffc, 1, "too long for base64 in one piece");
  p = luaL_buffinitsize(L, &b, out + 1);
  n = EVP_EncodeBlock((unsigned char *)p, (const unsigned char *)data, (int)len);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* unbase64(text) -> string | nil, msg. text: padded, length a multiple of 4, no spaces
   (the Lua layer strips whitespace and adds missing padding). */
static int c_unbase64(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *p;
  int n, pad = 0;
  if (len % 4 != 0) return relua_fail(L, "EINVAL", "fs.unbase64: not base64 (length %d)", (int)len);
  luaL_argcheck(L, len <= 0x7ffffff0, 1, "too long for base64 in one piece");
  if (len > 0 && text[len - 1] == '=') pad++;
  if (len > 1 && text[len - 2] == '=') pad++;
  p = luaL_buffinitsize(L, &b, len / 4 * 3 + 1);
  n = len == 0 ? 0 : EVP_DecodeBlock((unsigned char *)p, (const unsigned char *)text, (int)len);
  if (n < 0) {
    luaL_pushresultsize(&b, 0);
    return relua_fail(L, "EINVAL", "fs.unbase64: not base64");
  }
  luaL_pushresultsize(&b, (size_t)(n - pad));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"digest_file", c_digest_file},
  {"digests_file", c_digests_file},
  {"hash", c_hash},
  {"base64", c_base64},
  {"unbase64", c_unbase64},
  {NULL, NULL}
};

int luaopen_relua_core_crypto(lua_State *L) {
  if (luaL_newmetatable(L, CTX_MT)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, CTX_MT ".multi")) {
    lua_pushcfunction(L, multi_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
