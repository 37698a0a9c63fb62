/*
** archive.c: relua.core.archive, reading entries of archives (zip, tar, tar.gz, ...)
** (zip and tar, any compression) through libarchive. Used to read a wheel's METADATA and an sdist's PKG-INFO.
**
**   archive.open(path [, kind]) -> reader | nil, msg, code
**     kind: "zip" (a zip file only), "tar" (a tar, compressed or not) or "any" (default)
**   archive.open_memory(data, name [, kind]) -> reader | nil, msg, code (name: for messages)
**   reader:next() -> {name=, type=, size=} | nil (end) | nil, msg, code
**   reader:read([max]) -> data of the current entry | nil, msg, code ("too_large" over max)
**   reader:close()  (also __gc and __close)
*/
#include <errno.h>
#include <locale.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "relua.h"

#define READER_MT "relua.archive.Reader"
#define DEFAULT_MAX (16 * 1024 * 1024)

typedef struct Reader {
  struct archive *a;   /* NULL once closed */
  int has_entry;       /* an entry header was read and its data not yet read */
} Reader;

static Reader *check_reader(lua_State *L) {
  Reader *r = (Reader *)luaL_checkudata(L, 1, READER_MT);
  if (r->a == NULL) luaL_error(L, "archive: reader is closed");
  return r;
}

static int archive_failure(lua_State *L, struct archive *a, const char *what, const char *path) {
  const char *msg = archive_error_string(a);
  int err = archive_errno(a);
  int os = err == ENOENT || err == EACCES || err == EISDIR || err == ENOTDIR;
  return relua_fail(L, os ? relua_errno_name(err) : "archive", "%s: %s: %s", what, path,
                    msg ? msg : "unreadable archive");
}

static const char *const kinds[] = {"any", "zip", "tar", NULL};

/*
** A new reader userdata for the archive called `name` (kept for messages, uservalue 1),
** set up for the kind of archive at index kind_idx. [..] -> [.., reader]
*/
static Reader *new_reader(lua_State *L, int name_idx, int kind_idx) {
  int kind = luaL_checkoption(L, kind_idx, "any", kinds);
  Reader *r = (Reader *)lua_newuserdatauv(L, sizeof(Reader), 2);  /* [reader] */
  r->a = NULL;
  r->has_entry = 0;
  luaL_setmetatable(L, READER_MT);
  lua_pushvalue(L, name_idx);
  lua_setiuservalue(L, -2, 1);
  r->a = archive_read_new();
  if (r->a == NULL) luaL_error(L, "archive.open: out of memory");
  /* Only what the kind can be: each reader and filter registered costs its set-up. */
  if (kind != 1) archive_read_support_filter_all(r->a);   /* a zip is never compressed whole */
  if (kind != 2) archive_read_support_format_zip(r->a);   /* wheels, zip sdists */
  if (kind != 1) archive_read_support_format_tar(r->a);   /* sdists: ustar, pax, gnu */
  return r;
}

static int opened(lua_State *L, Reader *r, int rc, const char *name) {
  if (rc != ARCHIVE_OK) {
    int n = archive_failure(L, r->a, "archive.open", name);
    archive_read_free(r->a);
    r->a = NULL;
    return n;
  }
  return 1;
}

static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  Reader *r = new_reader(L, 1, 2);
  return opened(L, r, archive_read_open_filename(r->a, path, 64 * 1024), path);
}

/* archive.open_memory(data, name [, kind]): the archive in a string (kept alive by the reader). */
static int l_open_memory(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  const char *name = luaL_checkstring(L, 2);
  Reader *r = new_reader(L, 2, 3);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 2);
  return opened(L, r, archive_read_open_memory(r->a, data, len), name);
}

static const char *path_of(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  const char *p = lua_tostring(L, -1);
  lua_pop(L, 1);  /* the userdata keeps the string alive */
  return p ? p : "?";
}

/*
** Entries are read in a UTF-8 locale (this thread's only, for the call): in the C locale
** libarchive cannot convert a UTF-8 name and gives none. In it, the entry's name in the
** locale's charset is UTF-8, with no conversion for an ASCII one.
*/
static locale_t utf8_locale(void) {
  static locale_t loc = (locale_t)0;
  if (loc == (locale_t)0) loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
  return loc;
}

static int l_next(lua_State *L) {
  Reader *r = check_reader(L);
  struct archive_entry *e;
  const char *name = NULL;
  locale_t utf8 = utf8_locale(), old = utf8 ? uselocale(utf8) : (locale_t)0;
  int rc = archive_read_next_header(r->a, &e);
  if (rc != ARCHIVE_EOF && rc >= ARCHIVE_WARN) name = archive_entry_pathname(e);
  if (utf8) uselocale(old);
  if (rc == ARCHIVE_EOF) {
    r->has_entry = 0;
    lua_pushnil(L);
    return 1;
  }
  if (rc < ARCHIVE_WARN) return archive_failure(L, r->a, "archive.next", path_of(L));
  r->has_entry = 1;
  lua_createtable(L, 0, 3);  /* [reader, entry] */
  if (name == NULL) name = archive_entry_pathname_utf8(e);
  lua_pushstring(L, name ? name : "");
  lua_setfield(L, -2, "name");
  const char *type = "other";
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: type = "file"; break;
    case AE_IFDIR: type = "directory"; break;
    case AE_IFLNK: type = "link"; break;
    default: break;
  }
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  if (archive_entry_size_is_set(e)) {
    lua_pushinteger(L, (lua_Integer)archive_entry_size(e));
    lua_setfield(L, -2, "size");
  }
  return 1;
}

static int l_read(lua_State *L) {
  Reader *r = check_reader(L);
  lua_Integer max = luaL_optinteger(L, 2, DEFAULT_MAX);
  luaL_argcheck(L, max >= 0, 2, "must be >= 0");
  if (!r->has_entry) return luaL_error(L, "archive.read: no current entry (call next() first)");
  r->has_entry = 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t total = 0;
  for (;;) {
    char *p = luaL_prepbuffer(&b);
    la_ssize_t n = archive_read_data(r->a, p, LUAL_BUFFERSIZE);
    if (n < 0) return archive_failure(L, r->a, "archive.read", path_of(L));
    if (n == 0) break;
    total += (size_t)n;
    if (total > (size_t)max)
      return relua_fail(L, "too_large", "archive.read: %s: entry larger than %d bytes",
                        path_of(L), (int)max);
    luaL_addsize(&b, (size_t)n);
  }
  luaL_pushresult(&b);
  return 1;
}

static int l_close(lua_State *L) {
  Reader *r = (Reader *)luaL_checkudata(L, 1, READER_MT);
  if (r->a != NULL) {
    archive_read_free(r->a);
    r->a = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  Reader *r = (Reader *)luaL_checkudata(L, 1, READER_MT);
  lua_pushfstring(L, "archive.Reader (%s)%s", path_of(L), r->a ? "" : " closed");
  return 1;
}

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"open_memory", l_open_memory},
  {NULL, NULL},
};

static const luaL_Reg methods[] = {
  {"next", l_next},
  {"read", l_read},
  {"close", l_close},
  {NULL, NULL},
};

static const luaL_Reg metamethods[] = {
  {"__gc", l_close},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {"__index", NULL},
  {NULL, NULL},
};

int luaopen_relua_core_archive(lua_State *L) {
  luaL_newmetatable(L, READER_MT);   /* [mt] */
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);           /* [mt, methods] */
  lua_setfield(L, -2, "__index");    /* [mt] */
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
