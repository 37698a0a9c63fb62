/*
** fs.c: files and folders (relua.core.fs). Each function is one system call or a short,
** fixed sequence of them; recursion (mkdir -p, rm -r), globbing, sorting and path
** arithmetic are in lib/relua/fs.lua. Failures return nil, "fs.op: path: reason", "ECODE".
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lualib.h"
#include "relua.h"
#include "store.h"

#define LOCK_MT "relua.fs.Lock"
#define CHUNK 65536

/* Reads the whole of fd into a string on the stack; -1 with errno on failure. */
static int push_contents(lua_State *L, int fd) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    char *p = luaL_prepbuffsize(&b, CHUNK);
    ssize_t r = read(fd, p, CHUNK);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;  /* the half-built buffer is dropped with the stack */
    }
    if (r == 0) break;
    luaL_addsize(&b, (size_t)r);
  }
  luaL_pushresult(&b);
  return 0;
}

/* fs.read(path) -> string | nil, msg, code */
static int fs_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC), err;
  if (fd < 0) return relua_oserror(L, "fs.read", path);
  if (push_contents(L, fd) != 0) {
    err = errno;
    close(fd);
    errno = err;
    return relua_oserror(L, "fs.read", path);
  }
  close(fd);
  return 1;
}

/* fs.write(path, data, mode) -> true | nil, msg, code. mode < 0: keep the old file's. */
static int fs_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int mode = (int)luaL_optinteger(L, 3, -1);
  if (relua_write_atomic(path, data, len, mode) != 0) return relua_oserror(L, "fs.write", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* fs.append(path, data, sync) -> true | nil, msg, code. One write(2) with O_APPEND. */
static int fs_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int sync = lua_toboolean(L, 3), fd, err;
  ssize_t w;
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return relua_oserror(L, "fs.append", path);
  do {
    w = write(fd, data, len);
  } while (w < 0 && errno == EINTR);
  if (w >= 0 && (size_t)w < len) {  /* short write (disk full): finish, but say so */
    if (relua_write_all(fd, data + w, len - (size_t)w) != 0) w = -1;
  }
  if (w >= 0 && sync && fsync(fd) != 0) w = -1;
  err = errno;
  close(fd);
  if (w < 0) {
    errno = err;
    return relua_oserror(L, "fs.append", path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* fs.exists(path) -> boolean (a dangling link counts: something is there). */
static int fs_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, lstat(luaL_checkstring(L, 1), &st) == 0);
  return 1;
}

/* fs.stat(path [, follow]) -> {type=, size=, mode=, mtime=} | nil, msg, code */
static int fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  const char *type;
  int rc = lua_toboolean(L, 2) ? stat(path, &st) : lstat(path, &st);
  if (rc != 0) return relua_oserror(L, "fs.stat", path);
  if (S_ISREG(st.st_mode)) type = "file";
  else if (S_ISDIR(st.st_mode)) type = "directory";
  else if (S_ISLNK(st.st_mode)) type = "link";
  else type = "other";
  lua_createtable(L, 0, 4);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  return 1;
}

/* fs.mkdir(path [, mode]) -> true | nil, msg, code: one level (the Lua layer does -p). */
static int fs_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (mkdir(path, (mode_t)luaL_optinteger(L, 2, 0777)) != 0) return relua_oserror(L, "fs.mkdir", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* The DIR of fs.list sits in a userdata box, so a memory error while listing cannot leak it. */
static int dir_gc(lua_State *L) {
  DIR **box = (DIR **)lua_touserdata(L, 1);
  if (*box != NULL) closedir(*box);
  *box = NULL;
  return 0;
}

/* fs.list(dir) -> array of names (unsorted, no . and ..) | nil, msg, code */
static int fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR **box;
  struct dirent *e;
  lua_Integer n = 0;
  int err;
  lua_settop(L, 1);
  box = (DIR **)lua_newuserdatauv(L, sizeof(DIR *), 0);  /* [path, box] */
  *box = NULL;
  lua_newtable(L);
  lua_pushcfunction(L, dir_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, 2);
  lua_newtable(L);                                         /* [path, box, names] */
  *box = opendir(path);
  if (*box == NULL) return relua_oserror(L, "fs.list", path);
  for (;;) {
    errno = 0;
    e = readdir(*box);
    if (e == NULL) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, 3, ++n);
  }
  err = errno;
  closedir(*box);
  *box = NULL;
  if (err != 0) {
    errno = err;
    return relua_oserror(L, "fs.list", path);
  }
  return 1;
}

/* fs.remove(path) -> true | nil, msg, code: a file, a link, or an empty folder. */
static int fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (unlink(path) != 0) {
    if (errno != EISDIR && errno != EPERM) return relua_oserror(L, "fs.remove", path);
    if (rmdir(path) != 0) return relua_oserror(L, "fs.remove", path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* The copy's scratch state lives in a userdata so that a raise cannot leak it. */
typedef struct Copy {
  int in, out;
  char *tmp;
} Copy;

static void copy_cleanup(Copy *c) {
  if (c->in >= 0) close(c->in);
  if (c->out >= 0) close(c->out);
  if (c->tmp != NULL) {
    unlink(c->tmp);
    free(c->tmp);
  }
  c->in = c->out = -1;
  c->tmp = NULL;
}

static int copy_gc(lua_State *L) {
  copy_cleanup((Copy *)lua_touserdata(L, 1));
  return 0;
}

/* fs.copy(src, dst) -> true | nil, msg, code. Streams into a temp file beside dst, fsyncs,
   renames: dst is either the old file or the whole copy, with src's permissions. */
static int fs_copy(lua_State *L) {
  const char *src = luaL_checkstring(L, 1), *dst = luaL_checkstring(L, 2);
  size_t n = strlen(dst);
  struct stat st;
  char buf[CHUNK];
  const char *failed = dst;
  Copy *c;
  lua_settop(L, 2);
  c = (Copy *)lua_newuserdatauv(L, sizeof(Copy), 0);
  c->in = c->out = -1;
  c->tmp = NULL;
  lua_newtable(L);
  lua_pushcfunction(L, copy_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);                         /* [src, dst, c] */

  c->in = open(src, O_RDONLY | O_CLOEXEC);
  if (c->in < 0 || fstat(c->in, &st) != 0) { failed = src; goto fail; }
  if (S_ISDIR(st.st_mode)) { errno = EISDIR; failed = src; goto fail; }
  c->tmp = (char *)malloc(n + sizeof ".relua-tmp.XXXXXX");
  if (c->tmp == NULL) goto fail;
  memcpy(c->tmp, dst, n);
  memcpy(c->tmp + n, ".relua-tmp.XXXXXX", sizeof ".relua-tmp.XXXXXX");
  c->out = mkostemp(c->tmp, O_CLOEXEC);
  if (c->out < 0) { free(c->tmp); c->tmp = NULL; goto fail; }
  if (fchmod(c->out, st.st_mode & 07777) != 0) goto fail;
  for (;;) {
    ssize_t r = read(c->in, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { failed = src; goto fail; }
    if (r == 0) break;
    if (relua_write_all(c->out, buf, (size_t)r) != 0) goto fail;
  }
  if (fsync(c->out) != 0) goto fail;
  if (close(c->out) != 0) { c->out = -1; goto fail; }
  c->out = -1;
  if (rename(c->tmp, dst) != 0) goto fail;
  free(c->tmp);
  c->tmp = NULL;
  copy_cleanup(c);  /* closes src */
  relua_fsync_dir(dst);
  lua_pushboolean(L, 1);
  return 1;
fail:
  {
    int err = errno;
    copy_cleanup(c);  /* removes the temp file */
    errno = err;
    return relua_oserror(L, "fs.copy", failed);
  }
}

/* fs.tmpdir(prefix) -> path | nil, msg, code: a new 0700 folder under $TMPDIR or /tmp. */
static int fs_tmpdir(lua_State *L) {
  const char *prefix = luaL_optstring(L, 1, "relua");
  const char *base = getenv("TMPDIR");
  char *path;
  luaL_argcheck(L, strchr(prefix, '/') == NULL, 1, "prefix must not contain '/'");
  if (base == NULL || *base == '\0') base = "/tmp";
  lua_pushfstring(L, "%s/%s.XXXXXX", base, prefix);
  path = (char *)lua_newuserdatauv(L, lua_rawlen(L, -1) + 1, 0);
  memcpy(path, lua_tostring(L, -2), lua_rawlen(L, -2) + 1);
  if (mkdtemp(path) == NULL) return relua_oserror(L, "fs.tmpdir", lua_tostring(L, -2));
  lua_pushstring(L, path);
  return 1;
}

static int fs_cwd(lua_State *L) {
  char buf[4096];
  if (getcwd(buf, sizeof buf) == NULL) return relua_oserror(L, "fs.cwd", NULL);
  lua_pushstring(L, buf);
  return 1;
}

static int fs_hostname(lua_State *L) {
  char buf[256];
  if (gethostname(buf, sizeof buf) != 0) return relua_oserror(L, "fs.hostname", NULL);
  buf[sizeof buf - 1] = '\0';
  lua_pushstring(L, buf);
  return 1;
}

/* fs.readlink(path) -> target | nil, msg, code */
static int fs_readlink(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[4096];
  ssize_t n = readlink(path, buf, sizeof buf - 1);
  if (n < 0) return relua_oserror(L, "fs.readlink", path);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* ---------------------------------------------------------------- locks */

typedef struct Lock {
  int fd;  /* -1 once released */
} Lock;

static int lock_close(lua_State *L) {
  Lock *k = (Lock *)luaL_checkudata(L, 1, LOCK_MT);
  relua_lock_release(k->fd);
  k->fd = -1;
  return 0;
}

/* lock:record() -> the holder record this lock wrote. */
static int lock_record(lua_State *L) {
  Lock *k = (Lock *)luaL_checkudata(L, 1, LOCK_MT);
  if (k->fd < 0) return luaL_error(L, "fs.lock: the lock is released");
  lua_getiuservalue(L, 1, 1);
  return 1;
}

/* lock:holder() -> {pid=, host=, since=}: the record this lock wrote, parsed. */
static int lock_holder(lua_State *L) {
  lock_record(L);
  relua_store_push_holder(L, lua_tostring(L, -1));
  return 1;
}

static int lock_tostring(lua_State *L) {
  Lock *k = (Lock *)luaL_checkudata(L, 1, LOCK_MT);
  lua_getiuservalue(L, 1, 2);
  lua_pushfstring(L, "relua.fs.Lock (%s%s)", lua_tostring(L, -1), k->fd < 0 ? ", released" : "");
  return 1;
}

/*
** core.lock(path, wait) -> lock | nil, msg, "locked", holder | nil, msg, code
** The one lock implementation (lock.c): the record is this process's holder record.
** wait: false (try once), true (until free; Ctrl-C interrupts) or seconds.
*/
static int fs_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  double wait = lua_isnumber(L, 2) ? lua_tonumber(L, 2) : (lua_toboolean(L, 2) ? -1 : 0);
  char record[512];
  int busy;
  Lock *k;
  lua_settop(L, 2);
  if (wait < 0 && lua_isnumber(L, 2)) wait = 0;
  relua_store_holder_record(record, sizeof record);
  k = (Lock *)lua_newuserdatauv(L, sizeof(Lock), 2);  /* [path, wait, k] */
  k->fd = -1;
  luaL_setmetatable(L, LOCK_MT);
  lua_pushstring(L, record);
  lua_setiuservalue(L, 3, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 3, 2);
  k->fd = relua_lock_take(path, record, wait, &busy);
  if (k->fd >= 0) return 1;
  if (errno == EINTR && relua_interrupted()) return relua_raise_interrupt(L);
  if (errno != EWOULDBLOCK) return relua_oserror(L, "fs.lock", path);
  relua_lock_push_record(L, busy);                   /* [.., record] */
  close(busy);
  relua_store_push_holder(L, lua_tostring(L, -1));   /* [.., record, holder] */
  lua_pushnil(L);
  lua_getfield(L, -2, "pid");
  lua_getfield(L, -3, "host");
  lua_getfield(L, -4, "since");
  if (lua_isinteger(L, -3))
    lua_pushfstring(L, "fs.lock: %s is held by pid %I on %s since %s", path,
                    (LUAI_UACINT)lua_tointeger(L, -3), lua_tostring(L, -2), lua_tostring(L, -1));
  else
    lua_pushfstring(L, "fs.lock: %s is locked", path);
  lua_replace(L, -4);
  lua_pop(L, 2);                                     /* [.., record, holder, nil, msg] */
  lua_pushliteral(L, "locked");
  lua_pushvalue(L, -4);
  return 4;
}

/* ---------------------------------------------------------------- stdout */

static int stream_close(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int ok = fclose(p->f) == 0;
  return luaL_fileresult(L, ok, NULL);
}

/*
** fs.stdout_to_stderr() -> file: from now on whatever is written to stdout (by relua, or by
** the processes it starts) goes to stderr; the file returned writes to the original
** stdout. For --json: the JSON alone on stdout, the progress on stderr.
*/
static int fs_stdout_to_stderr(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  int fd;
  p->closef = NULL;  /* box first: a closed file until it holds one */
  p->f = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  fflush(stdout);
  fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return relua_oserror(L, "fs.stdout_to_stderr", "stdout");
  p->f = fdopen(fd, "w");
  if (p->f == NULL) {
    int err = errno;
    close(fd);
    errno = err;
    return relua_oserror(L, "fs.stdout_to_stderr", "stdout");
  }
  p->closef = stream_close;
  if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) return relua_oserror(L, "fs.stdout_to_stderr", "stderr");
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"close", lock_close},
  {"record", lock_record},
  {"holder", lock_holder},
  {NULL, NULL}
};

static const luaL_Reg lock_meta[] = {
  {"__gc", lock_close},
  {"__close", lock_close},
  {"__tostring", lock_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"read", fs_read},
  {"write", fs_write},
  {"append", fs_append},
  {"exists", fs_exists},
  {"stat", fs_stat},
  {"mkdir", fs_mkdir},
  {"list", fs_list},
  {"remove", fs_remove},
  {"copy", fs_copy},
  {"tmpdir", fs_tmpdir},
  {"cwd", fs_cwd},
  {"hostname", fs_hostname},
  {"readlink", fs_readlink},
  {"lock", fs_lock},
  {"stdout_to_stderr", fs_stdout_to_stderr},
  {NULL, NULL}
};

int luaopen_relua_core_fs(lua_State *L) {
  luaL_newlib(L, funcs);                 /* [fs] */
  if (luaL_newmetatable(L, LOCK_MT)) {   /* [fs, mt] */
    luaL_setfuncs(L, lock_meta, 0);
    luaL_newlib(L, lock_methods);        /* [fs, mt, methods] */
    lua_setfield(L, -2, "__index");
  }
  lua_getfield(L, -1, "__index");        /* [fs, mt, methods]: Lua adds holder() */
  lua_setfield(L, -3, "Lock");
  lua_pop(L, 1);
  return 1;
}
