/*
** store_folder.c: the folder backend of the storage interface (store.h), the default.
** On disk, as relua has always kept it (existing ledgers keep working):
**   RELEASES/TICKET.json   the state: replaced atomically and durably (relua_write_atomic)
**   RELEASES/TICKET.log    the audit events: O_APPEND, one write(2) per event, fdatasync'd
**   RELEASES/TICKET.lock   the ticket's lock: flock + holder record (lock.c)
**   RELEASES/TICKET/       the phases' output files
**   LANES/LANE.jsonl       a lane's control records, one JSON object a line, appended
**   LANES/LANE.lock        the lane's lock, held while a record is decided and appended
** A torn last line of a log or of a lane's records (an append a crash left unfinished) is
** cut back to the last whole line before anything is appended to it (cut_torn).
** RELEASES is HOME/releases and LANES is HOME/lanes. Each folder the store creates gets a
** .gitignore that ignores everything in it, so the ledger never dirties the repository
** it releases.
** The version of a state (for compare-and-swap) is derived from the file's identity and
** change time: every replace is a rename of a new file, so it changes on every write.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ledger.h"

typedef struct Folder {
  relua_Store base;
  char *releases;   /* malloc'd */
  char *lanes;      /* malloc'd */
} Folder;

struct relua_StoreLock {
  int fd;      /* the flock'd lock file */
  int logfd;   /* the ticket's audit log, O_APPEND */
  char *base;  /* RELEASES/TICKET (malloc'd): to tidy up after a refused run */
};

#define F(s) ((Folder *)(s))

/* ---------------------------------------------------------------- helpers */

/* The folder exists (created when not) and ignores itself in git. */
static int ensure_dir(const char *path) {
  char gi[4096];
  int fd;
  if (relua_mkdir_p(path) != 0) return -1;
  snprintf(gi, sizeof gi, "%s/.gitignore", path);
  fd = open(gi, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    static const char text[] = "# relua's ledger: never part of the repository it releases\n*\n";
    if (relua_write_all(fd, text, sizeof text - 1) != 0) { /* only a convenience */ }
    close(fd);
  }
  return 0;
}

/* A 63-bit version (>= 1) from a file's identity and change times. */
static int64_t version_of(const struct stat *st) {
  uint64_t h = 1469598103934665603ULL;
  uint64_t parts[6];
  int i;
  parts[0] = (uint64_t)st->st_dev;
  parts[1] = (uint64_t)st->st_ino;
  parts[2] = (uint64_t)st->st_size;
  parts[3] = (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
  parts[4] = (uint64_t)st->st_ctim.tv_sec * 1000000000ULL + (uint64_t)st->st_ctim.tv_nsec;
  parts[5] = 0x5eed;
  for (i = 0; i < 6; i++) {
    int b;
    for (b = 0; b < 8; b++) {
      h ^= (parts[i] >> (b * 8)) & 0xff;
      h *= 1099511628211ULL;
    }
  }
  h &= 0x7fffffffffffffffULL;
  return h == 0 ? 1 : (int64_t)h;
}

/* Pushes "message: path: strerror" and returns RELUA_STORE_ERROR. */
static int os_fail(lua_State *L, const char *what, const char *path, int err) {
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
  return RELUA_STORE_ERROR;
}

/*
** Opens a file of the ledger for reading, refusing anything but a regular file (a FIFO
** would hang the reader, a device would feed it forever). Returns the fd; -1 with errno
** ENOENT when absent; -2 with the message pushed when refused or unreadable.
*/
static int open_regular(lua_State *L, const char *path) {
  struct stat st;
  int fd;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return -1;
    lua_pushfstring(L, "cannot read %s: %s", path, strerror(errno));
    return -2;
  }
  if (!S_ISREG(st.st_mode)) {
    lua_pushfstring(L, "%s is not a regular file: relua reads only the files it wrote", path);
    return -2;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return -1;
    lua_pushfstring(L, "cannot read %s: %s", path, strerror(errno));
    return -2;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {   /* replaced in between */
    close(fd);
    lua_pushfstring(L, "%s is not a regular file: relua reads only the files it wrote", path);
    return -2;
  }
  return fd;
}

/* Reads the whole of fd into a pushed string; 0, or -1 with errno (nothing pushed). */
static int push_fd(lua_State *L, int fd) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    char *p = luaL_prepbuffsize(&b, LUAL_BUFFERSIZE * 4);
    ssize_t r = read(fd, p, LUAL_BUFFERSIZE * 4);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      luaL_pushresult(&b);
      lua_pop(L, 1);
      errno = err;
      return -1;
    }
    if (r == 0) break;
    luaL_addsize(&b, (size_t)r);
  }
  luaL_pushresult(&b);
  return 0;
}

/* Pushes releases/ticket<suffix>. */
static const char *push_path(lua_State *L, const char *dir, const char *name,
                             const char *suffix) {
  return lua_pushfstring(L, "%s/%s%s", dir, name, suffix);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Pushes a sorted array of the valid names of files NAME<suffix> in dir. */
static int push_names(lua_State *L, const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t sn = strlen(suffix);
  lua_Integer n = 0, i;
  const char **v;
  int t;
  lua_newtable(L);
  t = lua_gettop(L);
  if (d == NULL) {
    if (errno == ENOENT || errno == ENOTDIR) return RELUA_STORE_OK;
    lua_pop(L, 1);
    return os_fail(L, "cannot list", dir, errno);
  }
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len > sn && strcmp(e->d_name + len - sn, suffix) == 0 &&
        relua_store_valid_name(e->d_name, len - sn)) {
      lua_pushlstring(L, e->d_name, len - sn);
      lua_rawseti(L, t, ++n);
    }
  }
  closedir(d);
  v = (const char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    v[i - 1] = lua_tostring(L, -1);   /* the table keeps it alive */
    lua_pop(L, 1);
  }
  qsort(v, (size_t)n, sizeof *v, cmp_str);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_pushstring(L, v[i - 1]);
    lua_rawseti(L, -2, i);
  }
  lua_replace(L, t);
  lua_settop(L, t);
  return RELUA_STORE_OK;
}

/* Removes temp files a killed state write left behind (we hold the lock). */
static void clean_temps(const char *dir, const char *ticket) {
  char prefix[128];
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t pn;
  if (d == NULL) return;
  snprintf(prefix, sizeof prefix, "%s.json.relua-tmp.", ticket);
  pn = strlen(prefix);
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, pn) == 0) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  }
  closedir(d);
}

/*
** Cuts a torn last line off the file fd (open for reading and writing): bytes after the
** last '\n' are an append that never finished (a crash, a power cut), not a record, and
** the next append must not be glued to them. 0 (nothing to cut, or cut durably), or -1
** with errno.
*/
static int cut_torn(int fd) {
  struct stat st;
  off_t end;
  char buf[4096];
  if (fstat(fd, &st) != 0) return -1;
  end = st.st_size;
  while (end > 0) {
    off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
    ssize_t r = pread(fd, buf, (size_t)(end - from), from), i;
    if (r < 0 && errno == EINTR) continue;
    if (r != (ssize_t)(end - from)) {
      if (r >= 0) errno = EIO;
      return -1;
    }
    for (i = r; i > 0 && buf[i - 1] != '\n'; i--) {}
    if (i > 0) {
      end = from + i;
      break;
    }
    end = from;
  }
  if (end == st.st_size) return 0;
  if (ftruncate(fd, end) != 0) return -1;
  return fdatasync(fd);
}

/* Appends data whole to fd and makes it durable (when sync). 0 or -1 with errno. */
static int append_fd(int fd, const char *data, size_t len, int sync) {
  off_t before = lseek(fd, 0, SEEK_END);
  if (relua_write_all(fd, data, len) != 0) {
    /* A full disk: the write stopped short. Cut the partial line back off, so the log
       holds whole lines only and the next event does not start in the middle of one. */
    int err = errno;
    if (before >= 0 && ftruncate(fd, before) == 0) (void)fdatasync(fd);
    errno = err;
    return -1;
  }
  return sync ? fdatasync(fd) : 0;
}

/* ---------------------------------------------------------------- the operations */

static void f_close(relua_Store *s) {
  Folder *f = F(s);
  free(f->releases);
  free(f->lanes);
  free(f);
}

static int f_describe(relua_Store *s, lua_State *L) {
  lua_pushfstring(L, "folder %s", F(s)->releases);
  return RELUA_STORE_OK;
}

static int f_where(relua_Store *s, lua_State *L, const char *ticket) {
  push_path(L, F(s)->releases, ticket, ".json");
  return RELUA_STORE_OK;
}

static int f_outdir(relua_Store *s, lua_State *L, const char *ticket) {
  push_path(L, F(s)->releases, ticket, "");
  return RELUA_STORE_OK;
}

static int f_lock(relua_Store *s, lua_State *L, const char *ticket, const char *holder,
                  relua_StoreLock **out) {
  Folder *f = F(s);
  relua_StoreLock *lk;
  const char *path;
  int fd, busy, err;
  if (ensure_dir(f->releases) != 0)
    return os_fail(L, "cannot create the ledger folder", f->releases, errno);
  path = push_path(L, f->releases, ticket, ".lock");
  fd = relua_lock_take(path, holder, 0, &busy);
  if (fd < 0) {
    err = errno;
    if (err == EWOULDBLOCK) {
      relua_lock_push_record(L, busy);
      close(busy);
      lua_remove(L, -2);
      return RELUA_STORE_LOCKED;
    }
    os_fail(L, "cannot lock", path, err);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  lua_pop(L, 1);
  lk = (relua_StoreLock *)malloc(sizeof *lk);
  if (lk == NULL) {
    relua_lock_release(fd);
    lua_pushliteral(L, "out of memory");
    return RELUA_STORE_ERROR;
  }
  lk->fd = fd;
  lk->base = NULL;
  path = push_path(L, f->releases, ticket, ".log");
  lk->logfd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (lk->logfd < 0 || cut_torn(lk->logfd) != 0) {
    err = errno;
    if (lk->logfd >= 0) close(lk->logfd);
    relua_lock_release(fd);
    free(lk);
    os_fail(L, "cannot open the audit log", path, err);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  lua_pop(L, 1);
  lk->base = strdup(lua_pushfstring(L, "%s/%s", f->releases, ticket));
  lua_pop(L, 1);
  clean_temps(f->releases, ticket);
  *out = lk;
  return RELUA_STORE_OK;
}

/*
** A run refused before it logged anything (a bad --from, a paused lane, a corrupt state)
** leaves no clutter: when the log is empty, the log and the lock file go, while the lock
** is still held (relua_lock_take checks that the file it locked is still the one at the
** path, so a waiter that had opened it takes a fresh one). Neither holds anything then.
*/
static void tidy_unused(relua_StoreLock *lk) {
  char path[4096];
  struct stat st;
  if (lk->base == NULL || lk->logfd < 0 || fstat(lk->logfd, &st) != 0 || st.st_size != 0)
    return;
  snprintf(path, sizeof path, "%s.log", lk->base);
  if (unlink(path) != 0) return;
  snprintf(path, sizeof path, "%s.lock", lk->base);
  (void)unlink(path);
}

static void f_unlock(relua_Store *s, relua_StoreLock *lk) {
  (void)s;
  if (lk == NULL) return;
  tidy_unused(lk);
  if (lk->logfd >= 0) close(lk->logfd);
  relua_lock_release(lk->fd);
  free(lk->base);
  free(lk);
}

static int f_holder(relua_Store *s, lua_State *L, const char *ticket) {
  const char *path = push_path(L, F(s)->releases, ticket, ".lock");
  int fd;
  if (!relua_lock_held(path)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return RELUA_STORE_OK;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC);
  lua_pop(L, 1);
  if (fd < 0) lua_pushliteral(L, "");
  else {
    relua_lock_push_record(L, fd);
    close(fd);
  }
  return RELUA_STORE_OK;
}

static int f_read(relua_Store *s, lua_State *L, const char *ticket, int64_t *version) {
  const char *path = push_path(L, F(s)->releases, ticket, ".json");
  struct stat st;
  int fd = open_regular(L, path);
  if (fd == -1) {
    lua_pushfstring(L, "no state file %s", path);
    lua_remove(L, -2);
    return RELUA_STORE_NOTFOUND;
  }
  if (fd == -2) {
    lua_remove(L, -2);
    return RELUA_STORE_CORRUPT;
  }
  if (fstat(fd, &st) != 0 || push_fd(L, fd) != 0) {
    int err = errno;
    close(fd);
    os_fail(L, "cannot read the state file", path, err);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  close(fd);
  lua_remove(L, -2);
  *version = version_of(&st);
  return RELUA_STORE_OK;
}

static int f_replace(relua_Store *s, lua_State *L, relua_StoreLock *lk, const char *ticket,
                     const char *doc, size_t len, int64_t expect, const char *event,
                     size_t elen, int64_t *version) {
  const char *path = push_path(L, F(s)->releases, ticket, ".json");   /* [path] */
  struct stat st;
  int64_t current = 0;
  if (stat(path, &st) == 0) current = version_of(&st);
  else if (errno != ENOENT) {
    os_fail(L, "cannot stat the state file", path, errno);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  if (current != expect) {
    lua_pushfstring(L, "the state file %s was replaced by another writer since it was read",
                    path);
    lua_remove(L, -2);
    return RELUA_STORE_CONFLICT;
  }
  if (relua_store_crash_due(L, "state-write") != 0) {  /* test-only: die half written */
    int fd;
    lua_pushfstring(L, "%s.relua-tmp.crash", path);
    fd = open(lua_tostring(L, -1), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      if (relua_write_all(fd, doc, len / 2) != 0) { /* dying anyway */ }
      close(fd);
    }
    fflush(stdout);
    fflush(stderr);
    kill(getpid(), SIGKILL);
  }
  if (ensure_dir(F(s)->releases) != 0 || relua_write_atomic(path, doc, len, 0644) != 0) {
    os_fail(L, "cannot write the state file", path, errno);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  if (stat(path, &st) != 0) {
    os_fail(L, "cannot stat the state file", path, errno);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  *version = version_of(&st);
  lua_pop(L, 1);
  relua_store_crash(L, "state-saved");
  if (event != NULL) {
    relua_store_crash(L, "log-event");
    if (lk == NULL || append_fd(lk->logfd, event, elen, 1) != 0) {
      int err = lk == NULL ? EBADF : errno;
      path = push_path(L, F(s)->releases, ticket, ".log");
      os_fail(L, "cannot write the audit log", path, err);
      lua_remove(L, -2);
      return RELUA_STORE_ERROR;
    }
  }
  return RELUA_STORE_OK;
}

static int f_append(relua_Store *s, lua_State *L, relua_StoreLock *lk, const char *ticket,
                    const char *data, size_t len, int sync) {
  const char *path = push_path(L, F(s)->releases, ticket, ".log");
  int fd = lk != NULL ? lk->logfd : -1, err = 0;
  if (fd < 0) {
    if (ensure_dir(F(s)->releases) != 0) err = errno;
    else fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && err == 0) err = errno;
  }
  if (fd >= 0 && append_fd(fd, data, len, sync) != 0) err = errno;
  if (fd >= 0 && (lk == NULL || fd != lk->logfd)) close(fd);
  if (err != 0) {
    os_fail(L, "cannot write the audit log", path, err);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  lua_pop(L, 1);
  return RELUA_STORE_OK;
}

static int f_events(relua_Store *s, lua_State *L, const char *ticket) {
  const char *path = push_path(L, F(s)->releases, ticket, ".log");
  int fd = open_regular(L, path);
  if (fd == -1) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    return RELUA_STORE_OK;
  }
  if (fd == -2) {
    lua_remove(L, -2);
    return RELUA_STORE_CORRUPT;
  }
  if (push_fd(L, fd) != 0) {
    int err = errno;
    close(fd);
    os_fail(L, "cannot read the audit log", path, err);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  close(fd);
  lua_remove(L, -2);
  return RELUA_STORE_OK;
}

static int f_tickets(relua_Store *s, lua_State *L) {
  return push_names(L, F(s)->releases, ".json");
}

static int f_lanes(relua_Store *s, lua_State *L) {
  return push_names(L, F(s)->lanes, ".jsonl");
}

/* Pushes the lane's records (an array of strings); a status. */
static int push_records(lua_State *L, const char *path) {
  const char *text, *p, *nl;
  size_t len;
  lua_Integer n = 0;
  int fd = open_regular(L, path);
  if (fd == -1) {
    lua_newtable(L);
    return RELUA_STORE_OK;
  }
  if (fd == -2) return RELUA_STORE_CORRUPT;
  if (push_fd(L, fd) != 0) {
    int err = errno;
    close(fd);
    return os_fail(L, "cannot read the control records", path, err);
  }
  close(fd);
  text = lua_tolstring(L, -1, &len);
  lua_newtable(L);                                         /* [text, records] */
  for (p = text; p < text + len; p = nl + 1) {
    nl = memchr(p, '\n', (size_t)(text + len - p));
    if (nl == NULL) {   /* a torn last line: the append never finished, it is not a record */
      break;
    }
    if (nl > p) {
      lua_pushlstring(L, p, (size_t)(nl - p));
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_remove(L, -2);
  return RELUA_STORE_OK;
}

static int f_controls(relua_Store *s, lua_State *L, const char *lane) {
  const char *path = push_path(L, F(s)->lanes, lane, ".jsonl");
  int st = push_records(L, path);
  lua_remove(L, -2);
  return st;
}

static int f_control_append(relua_Store *s, lua_State *L, const char *lane,
                            relua_StoreDecide decide, void *ud) {
  Folder *f = F(s);
  const char *path;
  char record[512];
  int fd, busy, st, base = lua_gettop(L);
  if (ensure_dir(f->lanes) != 0) return os_fail(L, "cannot create the lanes folder", f->lanes, errno);
  path = push_path(L, f->lanes, lane, ".lock");            /* [lockpath] */
  relua_store_holder_record(record, sizeof record);
  fd = relua_lock_take(path, record, -1, &busy);
  if (fd < 0) {
    int err = errno;
    if (busy >= 0) close(busy);
    os_fail(L, "cannot lock the lane", path, err);
    lua_remove(L, -2);
    return RELUA_STORE_ERROR;
  }
  lua_pop(L, 1);
  path = push_path(L, f->lanes, lane, ".jsonl");           /* [path] */
  st = push_records(L, path);                              /* [path, records | msg] */
  if (st == RELUA_STORE_OK) st = decide(L, ud);            /* [path, record | nil | msg] */
  if (st == RELUA_STORE_OK && lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *rec = lua_tolstring(L, -1, &len);
    int afd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644), err = 0;
    if (afd < 0) err = errno;
    else if (cut_torn(afd) != 0) {
      err = errno;
      close(afd);
    } else {
      /* one write of the record and its newline: a line is whole or absent */
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      luaL_addlstring(&b, rec, len);
      luaL_addchar(&b, '\n');
      luaL_pushresult(&b);
      rec = lua_tolstring(L, -1, &len);
      if (append_fd(afd, rec, len, 1) != 0) err = errno;
      lua_pop(L, 1);
      close(afd);
    }
    if (err != 0) {
      lua_pop(L, 1);
      os_fail(L, "cannot append the control record to", path, err);
      st = RELUA_STORE_ERROR;
    }
  }
  relua_lock_release(fd);
  lua_remove(L, base + 1);                                 /* the path */
  return st;
}

static const relua_StoreOps folder_ops = {
  "folder", f_close, f_describe, f_where, f_outdir,
  f_lock, f_unlock, f_holder,
  f_read, f_replace,
  f_append, f_events,
  f_tickets,
  f_controls, f_control_append, f_lanes
};

/* ---------------------------------------------------------------- opening */

static char *dup_trimmed(const char *s) {
  size_t n = strlen(s);
  char *d;
  while (n > 1 && s[n - 1] == '/') n--;
  d = (char *)malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

int relua_store_folder_open_dirs(lua_State *L, const char *releases, const char *lanes,
                                 relua_Store **out) {
  Folder *f = (Folder *)calloc(1, sizeof *f);
  if (f != NULL) {
    f->base.ops = &folder_ops;
    f->releases = dup_trimmed(releases);
    f->lanes = dup_trimmed(lanes);
  }
  if (f == NULL || f->releases == NULL || f->lanes == NULL) {
    if (f != NULL) f_close(&f->base);
    lua_pushliteral(L, "out of memory");
    return RELUA_STORE_ERROR;
  }
  *out = &f->base;
  return RELUA_STORE_OK;
}

/* url: the relua home (tickets in HOME/releases, lanes in HOME/lanes). */
static int folder_open(lua_State *L, const char *url, const char *home, relua_Store **out) {
  size_t n = strlen(url);
  int st;
  (void)home;   /* the phase outputs stay beside the tickets */
  while (n > 1 && url[n - 1] == '/') n--;
  lua_pushlstring(L, url, n);
  lua_pushfstring(L, "%s/releases", lua_tostring(L, -1));
  lua_pushfstring(L, "%s/lanes", lua_tostring(L, -2));
  st = relua_store_folder_open_dirs(L, lua_tostring(L, -2), lua_tostring(L, -1), out);
  if (st != RELUA_STORE_OK) {
    lua_replace(L, -4);
    lua_pop(L, 2);
    return st;
  }
  lua_pop(L, 3);
  return RELUA_STORE_OK;
}

const relua_StoreBackend relua_store_folder = {"folder", folder_open, NULL};
