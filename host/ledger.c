/*
** ledger.c: what the release engine ENFORCES, in C so that no recipe can bypass it
** (module relua.core.ledger; the policy around it is lib/relua/release.lua).
**
**  - the per-ticket lock: an exclusive flock on RELEASES/TICKET.lock, held for the whole
**    run; the file records "pid=N host=H since=ISO8601" for whoever is refused. The kernel
**    drops the lock when the holder dies, so a crashed run never leaves a stale lock.
**  - the state file RELEASES/TICKET.json: deterministic pretty JSON (relua_json_encode),
**    replaced atomically and durably (relua_write_atomic) on every change, with a schema
**    version. A file that does not parse, is truncated or has an unknown schema is refused
**    ("corrupt") and never written.
**  - the audit log RELEASES/TICKET.log: append-only, one line per event written with a
**    single write(2) on an O_APPEND descriptor and fdatasync'd before the call returns:
**    `2026-05-18T10:00:00Z ticket=1234 phase=prepare event=failed rc=1 msg="..."`.
**  - the phase runner: lg:run(plan, r) calls each phase's function under lua_pcall, records
**    running/done/failed (with rc) in the state file and the log, and halts on the first
**    failure.
**
** Test-only fault injection: RELUA_TEST_CRASH_AT=<point>[:<n>] makes the process SIGKILL
** itself the n-th time (default 1st) it reaches <point>; <point>:<n>:INT sends SIGINT
** instead. It exists so that the suite can prove that a kill -9 (or a Ctrl-C) at that
** moment loses nothing. Never set it in real use.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "relua.h"

#define LEDGER_MT "relua.core.ledger.Ledger"
#define SCHEMA 1

/* Uservalues of a Ledger. */
#define UV_STATE 1   /* the state table (what TICKET.json holds), or nil before init */
#define UV_INFO  2   /* {dir=, ticket=, state=, log=, lock=, out=} paths */

typedef struct Ledger {
  int lockfd, logfd;
  int crash_hits;     /* times the RELUA_TEST_CRASH_AT point was reached */
  int interrupted;    /* a Ctrl-C arrived while recording: raise it once recorded */
} Ledger;

/* ---------------------------------------------------------------- helpers */

static int valid_ticket(const char *s, size_t n) {
  size_t i;
  if (n < 1 || n > 64) return 0;
  if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static void push_now(lua_State *L) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);  /* not strftime: it would load the time zone database for nothing */
  lua_pushfstring(L, "%d-%c%c-%c%cT%c%c:%c%c:%c%cZ", tm.tm_year + 1900,
                  '0' + (tm.tm_mon + 1) / 10, '0' + (tm.tm_mon + 1) % 10,
                  '0' + tm.tm_mday / 10, '0' + tm.tm_mday % 10,
                  '0' + tm.tm_hour / 10, '0' + tm.tm_hour % 10,
                  '0' + tm.tm_min / 10, '0' + tm.tm_min % 10,
                  '0' + tm.tm_sec / 10, '0' + tm.tm_sec % 10);
}

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mkdir -p; 0 or -1 with errno. */
static int mkdir_p(const char *path) {
  char buf[4096];
  size_t i, n = strlen(path);
  if (n == 0 || n >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
  memcpy(buf, path, n + 1);
  for (i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
      buf[i] = c;
    }
  }
  return 0;
}

/* Reads a whole small file into a pushed string; 0, or -1 with errno (nothing pushed). */
static int push_file(lua_State *L, const char *path) {
  luaL_Buffer b;
  struct stat st;
  size_t chunk = LUAL_BUFFERSIZE;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (fstat(fd, &st) == 0 && st.st_size > 0 && (size_t)st.st_size < ((size_t)1 << 30))
    chunk = (size_t)st.st_size + 1;  /* one read, and one more to see the end */
  luaL_buffinit(L, &b);
  for (;;) {
    char *p = luaL_prepbuffsize(&b, chunk);
    ssize_t r = read(fd, p, chunk);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      close(fd);
      luaL_pushresult(&b);
      lua_pop(L, 1);
      errno = err;
      return -1;
    }
    if (r == 0) break;
    luaL_addsize(&b, (size_t)r);
  }
  close(fd);
  luaL_pushresult(&b);
  return 0;
}

/* Parses a "pid=N host=H since=T" lock record (the string on top) into a table. */
static void push_holder(lua_State *L, const char *rec) {
  lua_newtable(L);
  while (*rec) {
    const char *eq, *end;
    while (*rec == ' ' || *rec == '\n') rec++;
    if (!*rec) break;
    end = rec + strcspn(rec, " \n");
    eq = memchr(rec, '=', (size_t)(end - rec));
    if (eq != NULL) {
      lua_pushlstring(L, rec, (size_t)(eq - rec));
      if (eq - rec == 3 && memcmp(rec, "pid", 3) == 0) {
        lua_pushinteger(L, strtol(eq + 1, NULL, 10));
      } else
        lua_pushlstring(L, eq + 1, (size_t)(end - eq - 1));
      lua_settable(L, -3);
    }
    rec = end;
  }
}

/* The holder record of a lock file, as a pushed table (empty when unreadable). */
static void push_holder_of(lua_State *L, const char *lockpath) {
  if (push_file(L, lockpath) != 0) {
    lua_newtable(L);
    return;
  }
  push_holder(L, lua_tostring(L, -1));
  lua_remove(L, -2);
}

/* "pid=12 host=h since=T" from a holder table at idx (pushed). */
static const char *push_holder_text(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, "pid");
  lua_getfield(L, idx, "host");
  lua_getfield(L, idx, "since");
  if (!lua_isinteger(L, -3))
    lua_pushliteral(L, "holder not recorded yet: the run is just starting");
  else
    lua_pushfstring(L, "pid=%I host=%s since=%s", (LUAI_UACINT)lua_tointeger(L, -3),
                    lua_isstring(L, -2) ? lua_tostring(L, -2) : "?",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_replace(L, -4);
  lua_pop(L, 2);
  return lua_tostring(L, -1);
}

/* ---------------------------------------------------------------- the handle */

static Ledger *check_ledger(lua_State *L, int idx) {
  Ledger *lg = (Ledger *)luaL_checkudata(L, idx, LEDGER_MT);
  if (lg->lockfd < 0) luaL_error(L, "ledger: the ticket's ledger is closed");
  return lg;
}

static const char *info(lua_State *L, int idx, const char *field) {
  const char *s;
  lua_getiuservalue(L, idx, UV_INFO);
  lua_getfield(L, -1, field);
  s = lua_tostring(L, -1);   /* the info table keeps it alive */
  lua_pop(L, 2);
  return s;
}

/* One close for close, __gc and __close: drops the lock and the log. Safe twice. */
static void close_fds(Ledger *lg) {
  if (lg->logfd >= 0) { close(lg->logfd); lg->logfd = -1; }
  if (lg->lockfd >= 0) { close(lg->lockfd); lg->lockfd = -1; }
}

static int lg_close(lua_State *L) {
  close_fds((Ledger *)luaL_checkudata(L, 1, LEDGER_MT));
  return 0;
}

/* ---------------------------------------------------------------- crash points */

/*
** Test-only. The points (see doc/recipes.md): phase-start, phase-end, phase-done,
** phase-failed, state-encode (a save begins), state-write (dies with the temp file half
** written), state-saved (after the rename, before the log line), log-event (before a log
** line), step-before-record, step-after-record, and any name the Lua layer passes to
** lg:crash (step-run).
*/
/*
** The signal to raise when this hit of point is the one RELUA_TEST_CRASH_AT names, else 0.
** "POINT[:N]" means SIGKILL at the N-th hit; "POINT:N:INT" means SIGINT (a Ctrl-C at that
** moment, which the process survives).
*/
static int crash_due(Ledger *lg, const char *point) {
  const char *spec = getenv("RELUA_TEST_CRASH_AT");
  size_t n;
  long want = 1;
  const char *colon;
  char *end;
  if (spec == NULL || *spec == '\0') return 0;
  colon = strchr(spec, ':');
  n = colon ? (size_t)(colon - spec) : strlen(spec);
  if (strlen(point) != n || strncmp(spec, point, n) != 0) return 0;
  if (colon) want = strtol(colon + 1, &end, 10);
  if (++lg->crash_hits != want) return 0;
  return colon && strcmp(end, ":INT") == 0 ? SIGINT : SIGKILL;
}

static void crash_point(Ledger *lg, const char *point) {
  int sig = crash_due(lg, point);
  if (sig == 0) return;
  fflush(stdout);
  fflush(stderr);
  kill(getpid(), sig);
}

/*
** Ctrl-C arriving while the ledger records something: the host's SIGINT hook fires at the
** next Lua call, which may be the encoder's. The record is completed first; the interrupt
** is raised once it is durable and logged (lg->interrupted).
*/
static void raise_deferred(lua_State *L, Ledger *lg) {
  if (lg->interrupted) {
    lg->interrupted = 0;
    relua_raise_interrupt(L);
  }
}

static int is_interrupt(lua_State *L, int idx) {
  int yes = 0;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "code");
    yes = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "interrupted") == 0;
    lua_pop(L, 1);
  }
  return yes;
}

static int lg_crash(lua_State *L) {
  crash_point(check_ledger(L, 1), luaL_checkstring(L, 2));
  return 0;
}

/* ---------------------------------------------------------------- the audit log */

static int needs_quotes(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 1;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return 1;
  }
  return 0;
}

/* Pushes " key=value" with the value quoted and escaped when logfmt needs it. */
static void push_field(lua_State *L, const char *k, const char *s, size_t n) {
  luaL_Buffer b;
  size_t i;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, ' ');
  luaL_addstring(&b, k);
  luaL_addchar(&b, '=');
  if (!needs_quotes(s, n)) {
    luaL_addlstring(&b, s, n);
    luaL_pushresult(&b);
    return;
  }
  luaL_addchar(&b, '"');
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { luaL_addchar(&b, '\\'); luaL_addchar(&b, (char)c); }
    else if (c == '\n') luaL_addstring(&b, "\\n");
    else if (c == '\r') luaL_addstring(&b, "\\r");
    else if (c == '\t') luaL_addstring(&b, "\\t");
    else if (c < ' ' || c == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", c);
      luaL_addstring(&b, hex);
    } else luaL_addchar(&b, (char)c);
  }
  luaL_addchar(&b, '"');
  luaL_pushresult(&b);
}

static int key_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define MAX_FIELDS 32

/*
** Appends one event: timestamp, ticket, phase, event, rc, the other fields sorted, msg
** last. fields is the table at fidx (or 0). The line goes out in one write(2) on the
** O_APPEND descriptor and is fdatasync'd. Raises a structured error (exit 1) when the log
** cannot be written: an unrecorded event must not pass silently.
*/
static void log_event(lua_State *L, int self, const char *phase, const char *event,
                      int fidx) {
  Ledger *lg = check_ledger(L, self);
  const char *keys[MAX_FIELDS];
  int nkeys = 0, i, top, parts;
  size_t len;
  const char *line;
  if (fidx) fidx = lua_absindex(L, fidx);
  top = lua_gettop(L);
  crash_point(lg, "log-event");
  luaL_checkstack(L, MAX_FIELDS + 10, "ledger log");
  push_now(L);
  lua_pushfstring(L, " ticket=%s", info(L, self, "ticket"));
  parts = 2;
  if (phase != NULL) { push_field(L, "phase", phase, strlen(phase)); parts++; }
  push_field(L, "event", event, strlen(event));
  parts++;
  if (fidx) {
    lua_pushnil(L);
    while (lua_next(L, fidx) != 0) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TSTRING && nkeys < MAX_FIELDS) {
        const char *k = lua_tostring(L, -1);
        if (strcmp(k, "rc") != 0 && strcmp(k, "msg") != 0 && strcmp(k, "phase") != 0)
          keys[nkeys++] = k;   /* alive: the table holds it */
      }
    }
    qsort(keys, (size_t)nkeys, sizeof keys[0], key_cmp);
    for (i = -1; i <= nkeys; i++) {
      const char *k = i < 0 ? "rc" : i == nkeys ? "msg" : keys[i];
      const char *v;
      size_t vn;
      lua_getfield(L, fidx, k);
      if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
      v = luaL_tolstring(L, -1, &vn);            /* [..., value, text] */
      push_field(L, k, v, vn);                   /* [..., value, text, field] */
      lua_replace(L, -3);
      lua_pop(L, 1);
      parts++;
    }
  }
  lua_pushliteral(L, "\n");
  lua_concat(L, parts + 1);
  line = lua_tolstring(L, -1, &len);
  {
    off_t before = lseek(lg->logfd, 0, SEEK_END);
    if (relua_write_all(lg->logfd, line, len) != 0 || fdatasync(lg->logfd) != 0) {
      int err = errno;
      /* A full disk (ENOSPC, EFBIG) stopped the write short: cut the partial line back
         off, so the log holds whole lines and the next event starts on its own line. */
      if (before >= 0 && ftruncate(lg->logfd, before) == 0) (void)fdatasync(lg->logfd);
      relua_raise(L, 1, relua_errno_name(err), "cannot write the audit log %s: %s",
                  info(L, self, "log"), strerror(err));
    }
  }
  lua_settop(L, top);
}

/* lg:log(event [, fields]): fields.phase names the phase. */
static int lg_log(lua_State *L) {
  const char *phase = NULL;
  check_ledger(L, 1);
  luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "phase");
    phase = lua_tostring(L, -1);   /* the fields table keeps it alive */
    lua_pop(L, 1);
  }
  lua_settop(L, 3);
  log_event(L, 1, phase, lua_tostring(L, 2), lua_isnil(L, 3) ? 0 : 3);
  return 0;
}

/* ---------------------------------------------------------------- the state file */

static int encode_pretty(lua_State *L) {
  relua_json_encode(L, 1, 1);
  return 1;
}

/*
** Writes the state table (uservalue) durably. When it cannot be encoded (a programmer
** error) nothing is written: returns -1 with the message pushed. A failed write raises a
** structured error (exit 1).
*/
static int try_save(lua_State *L, int self) {
  Ledger *lg = check_ledger(L, self);
  const char *path = info(L, self, "state");
  const char *data;
  size_t len;
  int top = lua_gettop(L);
  int status, sig = crash_due(lg, "state-encode");
  if (sig != 0) kill(getpid(), sig);
  if (lua_getiuservalue(L, self, UV_STATE) != LUA_TTABLE)
    luaL_error(L, "ledger: no state to save (call lg:save(t) first)");
  push_now(L);
  lua_setfield(L, -2, "updated");
  lua_pop(L, 1);
  lua_pushcfunction(L, encode_pretty);
  lua_getiuservalue(L, self, UV_STATE);
  status = lua_pcall(L, 1, 1, 0);
  if (status != LUA_OK && is_interrupt(L, -1)) {
    lg->interrupted = 1;                                   /* the hook is spent: again */
    lua_pop(L, 1);
    lua_pushcfunction(L, encode_pretty);
    lua_getiuservalue(L, self, UV_STATE);
    status = lua_pcall(L, 1, 1, 0);
  }
  if (status != LUA_OK) {                                  /* [err] */
    lua_insert(L, top + 1);
    lua_settop(L, top + 1);
    return -1;
  }
  lua_pushliteral(L, "\n");
  lua_concat(L, 2);
  data = lua_tolstring(L, -1, &len);
  if (crash_due(lg, "state-write") != 0) {  /* test-only: die, the temp file half written */
    int fd;
    lua_pushfstring(L, "%s.relua-tmp.crash", path);
    fd = open(lua_tostring(L, -1), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      if (relua_write_all(fd, data, len / 2) != 0) { /* dying anyway */ }
      close(fd);
    }
    fflush(stdout);
    fflush(stderr);
    kill(getpid(), SIGKILL);
  }
  if (relua_write_atomic(path, data, len, 0644) != 0) {
    int err = errno;
    relua_raise(L, 1, relua_errno_name(err), "cannot write the state file %s: %s", path,
                strerror(err));
  }
  crash_point(lg, "state-saved");
  lua_settop(L, top);
  return 0;
}

static void save(lua_State *L, int self) {
  if (try_save(L, self) != 0)
    luaL_error(L, "ledger: cannot record the state: %s", lua_tostring(L, -1));
}

/* lg:save([t]): t (when given) becomes the state; writes it durably. */
static int lg_save(lua_State *L) {
  check_ledger(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, UV_STATE);
  }
  save(L, 1);
  raise_deferred(L, (Ledger *)lua_touserdata(L, 1));
  return 0;
}

/* lg:state() -> the state table, or nil for a new ticket. */
static int lg_state(lua_State *L) {
  check_ledger(L, 1);
  lua_getiuservalue(L, 1, UV_STATE);
  return 1;
}

/* lg:paths() -> {dir=, ticket=, state=, log=, lock=, out=} */
static int lg_paths(lua_State *L) {
  luaL_checkudata(L, 1, LEDGER_MT);
  lua_getiuservalue(L, 1, UV_INFO);
  return 1;
}

/* Pushes state[field] (a table), creating it when absent. */
static void state_sub(lua_State *L, int self, const char *field) {
  if (lua_getiuservalue(L, self, UV_STATE) != LUA_TTABLE)
    luaL_error(L, "ledger: no state yet");
  if (lua_getfield(L, -1, field) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, field);
  }
  lua_remove(L, -2);
}

/* Sets t[key] = the value at vidx and saves; an unencodable value is put back and raises. */
static void set_and_save(lua_State *L, int self, int tidx, const char *key, int vidx) {
  tidx = lua_absindex(L, tidx);
  vidx = lua_absindex(L, vidx);
  lua_getfield(L, tidx, key);                 /* [old] */
  lua_pushvalue(L, vidx);
  lua_setfield(L, tidx, key);
  if (try_save(L, self) != 0) {               /* [old, err] */
    lua_pushvalue(L, -2);
    lua_setfield(L, tidx, key);               /* the old value back */
    luaL_error(L, "cannot record %s: %s", key, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
}

/* lg:set(key, value [, phase]): state.state[key] = value, durable before it returns;
   logged (the key, not the value: values may be secrets). */
static int lg_set(lua_State *L) {
  const char *key, *phase;
  check_ledger(L, 1);
  key = luaL_checkstring(L, 2);
  luaL_checkany(L, 3);
  phase = luaL_optstring(L, 4, NULL);
  lua_settop(L, 4);
  state_sub(L, 1, "state");                   /* [lg, key, value, phase, values] */
  set_and_save(L, 1, 5, key, 3);
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "key");
  log_event(L, 1, phase, "state", -1);
  raise_deferred(L, (Ledger *)lua_touserdata(L, 1));
  return 0;
}

/* lg:get(key) -> state.state[key] */
static int lg_get(lua_State *L) {
  check_ledger(L, 1);
  luaL_checkstring(L, 2);
  state_sub(L, 1, "state");
  lua_getfield(L, -1, lua_tostring(L, 2));
  return 1;
}

/* lg:step(key) -> the recorded entry {phase=, at=, result=} or nil */
static int lg_step(lua_State *L) {
  check_ledger(L, 1);
  luaL_checkstring(L, 2);
  state_sub(L, 1, "steps");
  lua_getfield(L, -1, lua_tostring(L, 2));
  return 1;
}

/* lg:record_step(key, phase, result): durable, then logged event=step status=done. */
static int lg_record_step(lua_State *L) {
  Ledger *lg = check_ledger(L, 1);
  const char *key = luaL_checkstring(L, 2);
  const char *phase = luaL_optstring(L, 3, NULL);
  lua_settop(L, 4);
  crash_point(lg, "step-before-record");
  state_sub(L, 1, "steps");                   /* [lg, key, phase, result, steps] */
  lua_createtable(L, 0, 3);                   /* [..., steps, entry] */
  if (phase) { lua_pushstring(L, phase); lua_setfield(L, -2, "phase"); }
  push_now(L);
  lua_setfield(L, -2, "at");
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "result");
  set_and_save(L, 1, 5, key, 6);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "key");
  lua_pushliteral(L, "done");
  lua_setfield(L, -2, "status");
  log_event(L, 1, phase, "step", -1);
  crash_point(lg, "step-after-record");
  raise_deferred(L, lg);
  return 0;
}

/* ---------------------------------------------------------------- the phase runner */

/* Keeps structured errors; anything else becomes {message=, traceback=}. */
static int run_msgh(lua_State *L) {
  if (lua_istable(L, 1)) return 1;
  lua_createtable(L, 0, 2);
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    lua_pushvalue(L, 1);
  else if (!luaL_callmeta(L, 1, "__tostring") || lua_type(L, -1) != LUA_TSTRING) {
    lua_settop(L, 2);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  lua_setfield(L, 2, "message");
  luaL_traceback(L, L, NULL, 1);
  lua_setfield(L, 2, "traceback");
  return 1;
}

static int raise_interrupt_fn(lua_State *L) {
  return relua_raise_interrupt(L);
}

/* Pushes the entry of phases[] named name (state.phases), or raises. */
static void push_phase(lua_State *L, int self, const char *name) {
  lua_Integer i, n;
  state_sub(L, self, "phases");
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "name");
      if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0) {
        lua_pop(L, 1);
        lua_remove(L, -2);
        return;
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  luaL_error(L, "ledger: phase %s is not in the state file", name);
}

static void set_str(lua_State *L, int t, const char *k, const char *v) {
  if (v) lua_pushstring(L, v); else lua_pushnil(L);
  lua_setfield(L, t, k);
}

/*
** lg:run(plan, r [, mode]) -> true | false, phase, rc, message, error
** plan: array of {name=, fn=, skip=bool}. mode "run" (default): a skipped phase is logged
** `skipped`; the others are marked running, called as fn(r) under lua_pcall and recorded
** done or failed (rc: the error's rc, 130 when interrupted, else 1); the first failure
** halts. mode "revert": fn is the phase's revert (nil: logged `no-revert`); success marks
** the phase `reverted`; a failure is logged `revert-failed` and halts.
*/
static int lg_run(lua_State *L) {
  Ledger *lg = check_ledger(L, 1);
  int revert;
  lua_Integer i, n;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  revert = strcmp(luaL_optstring(L, 4, "run"), "revert") == 0;
  lua_settop(L, 3);
  n = luaL_len(L, 2);
  for (i = 1; i <= n; i++) {
    const char *name;
    int item, entry, status;
    double t0;
    lua_settop(L, 3);
    lua_rawgeti(L, 2, i);                                  /* [lg, plan, r, item] */
    item = lua_gettop(L);
    luaL_argcheck(L, lua_istable(L, item), 2, "plan items must be tables");
    lua_getfield(L, item, "name");
    name = lua_tostring(L, -1);
    luaL_argcheck(L, name != NULL, 2, "plan item without a name");
    if (lg->interrupted) {  /* Ctrl-C while the previous phase was being recorded */
      lg->interrupted = 0;
      log_event(L, 1, name, "interrupted", 0);
      lua_pushboolean(L, 0);
      lua_pushstring(L, name);
      lua_pushinteger(L, relua_interrupt_exit());
      lua_pushliteral(L, "interrupted before the phase started");
      lua_pushnil(L);
      return 5;
    }
    push_phase(L, 1, name);                                /* [..., name, entry] */
    entry = lua_gettop(L);
    lua_getfield(L, item, "skip");
    if (lua_toboolean(L, -1)) {
      lua_createtable(L, 0, 1);
      lua_getfield(L, item, "reason");
      lua_setfield(L, -2, "reason");
      log_event(L, 1, name, "skipped", -1);
      continue;
    }
    lua_getfield(L, item, "fn");                           /* [..., fn] */
    if (lua_isnil(L, -1)) {
      if (!revert) luaL_error(L, "ledger: phase %s has no function to run", name);
      log_event(L, 1, name, "no-revert", 0);
      continue;
    }
    /* start */
    if (!revert) {
      lua_getfield(L, entry, "attempts");
      lua_pushinteger(L, lua_tointeger(L, -1) + 1);
      lua_setfield(L, entry, "attempts");
      lua_pop(L, 1);
      set_str(L, entry, "status", "running");
      push_now(L);
      lua_setfield(L, entry, "started");
      set_str(L, entry, "finished", NULL);
      set_str(L, entry, "msg", NULL);
      lua_pushnil(L);
      lua_setfield(L, entry, "rc");
      save(L, 1);
    }
    log_event(L, 1, name, revert ? "revert" : "start", 0);
    crash_point(lg, "phase-start");
    /* call */
    t0 = monotonic();
    if (lg->interrupted) {  /* Ctrl-C while the start was recorded: fail it as interrupted */
      lg->interrupted = 0;
      lua_pop(L, 1);
      lua_pushcfunction(L, raise_interrupt_fn);
    }
    lua_pushcfunction(L, run_msgh);
    lua_insert(L, -2);                                     /* [..., msgh, fn] */
    lua_pushvalue(L, 3);
    relua_phase_guard(L, 1);
    status = lua_pcall(L, 1, 0, -3);                       /* [..., msgh, (err)] */
    if (relua_phase_guard(L, 0) != 0) {
      /* A cancellation wins over the phase's code: caught by a pcall or not, the phase
         fails with 130/143 (issue 9). */
      if (status != LUA_OK) lua_pop(L, 1);
      lua_pushcfunction(L, raise_interrupt_fn);
      status = lua_pcall(L, 0, 0, 0);                      /* [..., msgh, interrupted] */
    }
    if (status == LUA_OK) {
      lua_createtable(L, 0, 1);
      lua_pushnumber(L, (double)(long)((monotonic() - t0) * 1000) / 1000.0);
      lua_setfield(L, -2, "duration");
      crash_point(lg, "phase-end");
      if (revert) {
        set_str(L, entry, "status", "reverted");
        lua_pushnil(L);
        lua_setfield(L, entry, "rc");
        set_str(L, entry, "msg", NULL);
        push_now(L);
        lua_setfield(L, entry, "reverted");
      } else {
        set_str(L, entry, "status", "done");
        lua_pushinteger(L, 0);
        lua_setfield(L, entry, "rc");
        push_now(L);
        lua_setfield(L, entry, "finished");
      }
      save(L, 1);
      log_event(L, 1, name, revert ? "reverted" : "done", -1);
      crash_point(lg, "phase-done");
    } else {
      int err = lua_gettop(L), fields;
      lua_Integer rc = 1;
      const char *msg;
      if (lua_istable(L, err)) {
        lua_getfield(L, err, "rc");
        if (lua_isinteger(L, -1)) rc = lua_tointeger(L, -1);
        else {
          lua_getfield(L, err, "code");
          if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "interrupted") == 0) {
            lua_getfield(L, err, "exit");                  /* 130 Ctrl-C, 143 SIGTERM */
            rc = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 130;
            lua_pop(L, 1);
          }
          lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, err, "message");
      } else
        lua_pushstring(L, "error");
      msg = lua_tostring(L, -1);
      if (msg == NULL) msg = "error";                      /* [..., err, msg] */
      lua_createtable(L, 0, 3);
      fields = lua_gettop(L);
      lua_pushinteger(L, rc);
      lua_setfield(L, fields, "rc");
      lua_pushstring(L, msg);
      lua_setfield(L, fields, "msg");
      lua_pushnumber(L, (double)(long)((monotonic() - t0) * 1000) / 1000.0);
      lua_setfield(L, fields, "duration");
      if (revert) {
        lua_pushinteger(L, rc);
        lua_setfield(L, entry, "revert_rc");
        set_str(L, entry, "revert_msg", msg);
      } else {
        set_str(L, entry, "status", "failed");
        lua_pushinteger(L, rc);
        lua_setfield(L, entry, "rc");
        set_str(L, entry, "msg", msg);
        push_now(L);
        lua_setfield(L, entry, "finished");
      }
      save(L, 1);
      log_event(L, 1, name, revert ? "revert-failed" : "failed", fields);
      crash_point(lg, "phase-failed");
      lua_pushboolean(L, 0);
      lua_pushstring(L, name);
      lua_pushinteger(L, rc);
      lua_pushstring(L, msg);
      lua_pushvalue(L, err);
      return 5;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- reading */

static const char *const statuses[] = {"pending", "running", "done", "failed", "reverted", NULL};

/*
** Validates the decoded state at idx; NULL when sound, else what is wrong (pushed).
*/
static const char *check_shape(lua_State *L, int idx, const char *ticket) {
  lua_Integer i, n;
  if (!lua_istable(L, idx)) return lua_pushliteral(L, "not a JSON object");
  lua_getfield(L, idx, "schema");
  if (lua_isnil(L, -1)) return lua_pushliteral(L, "no schema version");
  if (!lua_isinteger(L, -1)) return lua_pushliteral(L, "the schema version is not an integer");
  if (lua_tointeger(L, -1) != SCHEMA)
    return lua_pushfstring(L, "unknown schema version %d (this relua reads schema %d)",
                           (int)lua_tointeger(L, -1), SCHEMA);
  lua_pop(L, 1);
  lua_getfield(L, idx, "ticket");
  if (lua_type(L, -1) != LUA_TSTRING) return lua_pushliteral(L, "no ticket");
  if (ticket != NULL && strcmp(lua_tostring(L, -1), ticket) != 0)
    return lua_pushfstring(L, "it belongs to ticket %s, not %s", lua_tostring(L, -1), ticket);
  lua_pop(L, 1);
  lua_getfield(L, idx, "recipe");
  if (!lua_istable(L, -1)) return lua_pushliteral(L, "no recipe record");
  lua_getfield(L, -1, "path");
  if (lua_type(L, -1) != LUA_TSTRING) return lua_pushliteral(L, "no recipe path");
  lua_pop(L, 2);
  lua_getfield(L, idx, "phases");
  if (!lua_istable(L, -1)) return lua_pushliteral(L, "no phases");
  n = luaL_len(L, -1);
  if (n < 1) return lua_pushliteral(L, "no phases");
  for (i = 1; i <= n; i++) {
    const char *const *s;
    const char *st;
    lua_rawgeti(L, -1, i);
    if (!lua_istable(L, -1)) return lua_pushfstring(L, "phase %d is not an object", (int)i);
    lua_getfield(L, -1, "name");
    if (lua_type(L, -1) != LUA_TSTRING) return lua_pushfstring(L, "phase %d has no name", (int)i);
    lua_getfield(L, -2, "status");
    st = lua_tostring(L, -1);
    for (s = statuses; st != NULL && *s != NULL && strcmp(*s, st) != 0; s++) {}
    if (st == NULL || *s == NULL)
      return lua_pushfstring(L, "phase %s has an unknown status", lua_tostring(L, -2));
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "state");
  if (!lua_isnil(L, -1) && !lua_istable(L, -1)) return lua_pushliteral(L, "state is not an object");
  lua_getfield(L, idx, "steps");
  if (!lua_isnil(L, -1) && !lua_istable(L, -1)) return lua_pushliteral(L, "steps is not an object");
  lua_pop(L, 2);
  return NULL;
}

/*
** Reads and validates a state file. Pushes the table and returns 1; or pushes
** nil, message, code ("ENOENT" when absent, "corrupt" otherwise) and returns 3.
*/
static int read_state(lua_State *L, const char *path, const char *ticket) {
  int top = lua_gettop(L);
  const char *why;
  if (push_file(L, path) != 0) {
    if (errno == ENOENT) return relua_fail(L, "ENOENT", "no state file %s", path);
    return relua_oserror(L, "cannot read the state file", path);
  }                                                        /* [text] */
  if (lua_rawlen(L, -1) == 0) {
    lua_settop(L, top);
    return relua_fail(L, "corrupt", "the state file %s is empty (truncated?)", path);
  }
  {                                                        /* strict RFC 8259 */
    size_t len;
    const char *text = lua_tolstring(L, top + 1, &len);
    if (relua_json_decode(L, text, len, path) == 1) lua_pushnil(L);
    else lua_remove(L, -1);                                /* [text, v, err] */
  }
  lua_pushnil(L);
  lua_insert(L, top + 2);                                  /* [text, nil, v, err]: as before */
  if (lua_isnil(L, -2)) {
    lua_pushfstring(L, "the state file %s does not parse: %s", path,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  } else {
    why = check_shape(L, top + 3, ticket);
    if (why == NULL) {                                     /* [text, json, v, nil, ...] */
      lua_pushvalue(L, top + 3);
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return 1;
    }
    lua_pushfstring(L, "the state file %s is not a relua ledger: %s", path, why);
  }
  lua_insert(L, top + 1);                                  /* the message */
  lua_settop(L, top + 1);
  lua_pushnil(L);
  lua_insert(L, top + 1);
  lua_pushliteral(L, "corrupt");
  return 3;
}

/* ledger.read(path [, ticket]) -> state | nil, message, code */
static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *ticket = luaL_optstring(L, 2, NULL);
  return read_state(L, path, ticket);
}

/* ---------------------------------------------------------------- opening */

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

static void check_ticket(lua_State *L, int arg) {
  size_t n;
  const char *t = luaL_checklstring(L, arg, &n);
  if (!valid_ticket(t, n))
    luaL_argerror(L, arg, "invalid ticket (1-64 characters of A-Z a-z 0-9 . _ -)");
}

/*
** ledger.open(dir, ticket) -> ledger | nil, message, code [, holder]
** Creates dir, takes the ticket's lock (code "locked" with the holder's record when
** another run has it), opens the audit log and reads the state (code "corrupt" when it
** is unsound; the file is left as it is).
*/
static int l_open(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *ticket, *lockpath, *path;
  Ledger *lg;
  char host[256] = "?", rec[512];
  int r;
  check_ticket(L, 2);
  ticket = lua_tostring(L, 2);
  lg = (Ledger *)lua_newuserdatauv(L, sizeof(Ledger), 2);  /* box first: [lg] */
  lg->lockfd = lg->logfd = -1;
  lg->crash_hits = 0;
  lg->interrupted = 0;
  luaL_setmetatable(L, LEDGER_MT);
  lua_createtable(L, 0, 6);                                /* [lg, info] */
  lua_pushvalue(L, 1); lua_setfield(L, -2, "dir");
  lua_pushvalue(L, 2); lua_setfield(L, -2, "ticket");
  lua_pushfstring(L, "%s/%s.json", dir, ticket); lua_setfield(L, -2, "state");
  lua_pushfstring(L, "%s/%s.log", dir, ticket); lua_setfield(L, -2, "log");
  lua_pushfstring(L, "%s/%s.lock", dir, ticket); lua_setfield(L, -2, "lock");
  lua_pushfstring(L, "%s/%s", dir, ticket); lua_setfield(L, -2, "out");
  lua_setiuservalue(L, -2, UV_INFO);                       /* [lg] */
  if (mkdir_p(dir) != 0) return relua_oserror(L, "cannot create the ledger folder", dir);
  lockpath = info(L, 3, "lock");
  lg->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lg->lockfd < 0) return relua_oserror(L, "cannot open the lock", lockpath);
  while ((r = flock(lg->lockfd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {}
  if (r != 0) {
    int err = errno;
    close(lg->lockfd);
    lg->lockfd = -1;
    if (err != EWOULDBLOCK) {
      errno = err;
      return relua_oserror(L, "cannot lock", lockpath);
    }
    push_holder_of(L, lockpath);                           /* [lg, holder] */
    lua_pushnil(L);
    lua_pushfstring(L, "ticket %s is locked by another run (%s)", ticket,
                    push_holder_text(L, -2));
    lua_remove(L, -2);
    lua_pushliteral(L, "locked");
    lua_pushvalue(L, -4);                                  /* [lg, holder, nil, msg, code, holder] */
    return 4;
  }
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  push_now(L);
  /* A fixed-size record (padded with spaces) overwrites the last holder's in place. */
  snprintf(rec, sizeof rec, "pid=%ld host=%s since=%s", (long)getpid(), host,
           lua_tostring(L, -1));
  lua_pop(L, 1);
  {
    size_t n = strlen(rec);
    memset(rec + n, ' ', sizeof rec - n);
    rec[sizeof rec - 1] = '\n';
  }
  if (pwrite(lg->lockfd, rec, sizeof rec, 0) < 0) {
    /* the lock holds regardless; only the record of its holder is missing */
  }
  path = info(L, 3, "log");
  lg->logfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (lg->logfd < 0) {
    r = relua_oserror(L, "cannot open the audit log", path);
    close_fds(lg);
    return r;
  }
  path = info(L, 3, "out");
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    r = relua_oserror(L, "cannot create the output folder", path);
    close_fds(lg);
    return r;
  }
  clean_temps(dir, ticket);
  r = read_state(L, info(L, 3, "state"), ticket);          /* [lg, state | nil msg code] */
  if (r == 1) {
    lua_setiuservalue(L, 3, UV_STATE);
    return 1;                                              /* [lg] */
  }
  if (strcmp(lua_tostring(L, -1), "ENOENT") == 0) {
    lua_settop(L, 3);                                      /* a new ticket */
    return 1;
  }
  close_fds(lg);
  return 3;
}

/* ledger.holder(dir, ticket) -> the holder record when a run holds the lock, else nil */
static int l_holder(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *path;
  int fd, r;
  check_ticket(L, 2);
  path = lua_pushfstring(L, "%s/%s.lock", dir, lua_tostring(L, 2));
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { lua_pushnil(L); return 1; }
  while ((r = flock(fd, LOCK_SH | LOCK_NB)) != 0 && errno == EINTR) {}
  close(fd);                                               /* releases ours, if taken */
  if (r == 0) { lua_pushnil(L); return 1; }
  push_holder_of(L, path);
  return 1;
}

/* ledger.valid_ticket(s) -> boolean */
static int l_valid_ticket(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, 1, &n);
  lua_pushboolean(L, s != NULL && lua_type(L, 1) == LUA_TSTRING && valid_ticket(s, n));
  return 1;
}

/*
** ledger.fingerprint(path) -> "dev:ino:size:mtime:ctime" (nanoseconds) | nil, message, code
** The file's identity and change times: equal fingerprints mean the content was not
** written in between (ctime moves on every write), so a recorded hash still holds.
*/
static int l_fingerprint(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  char buf[160];
  if (stat(path, &st) != 0) return relua_oserror(L, "cannot stat", path);
  snprintf(buf, sizeof buf, "%llu:%llu:%lld:%lld.%09ld:%lld.%09ld",
           (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
           (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
           (long long)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec);
  lua_pushstring(L, buf);
  return 1;
}

/* ledger.dir() -> the folder of the ledgers: $RELUA_HOME/releases, else .relua/releases */
static int l_dir(lua_State *L) {
  const char *home = getenv("RELUA_HOME");
  size_t n;
  if (home == NULL || *home == '\0') {
    lua_pushliteral(L, ".relua/releases");
    return 1;
  }
  n = strlen(home);
  while (n > 1 && home[n - 1] == '/') n--;
  lua_pushlstring(L, home, n);
  lua_pushliteral(L, "/releases");
  lua_concat(L, 2);
  return 1;
}

/* ledger.now() -> "2026-05-18T10:00:00Z" */
static int l_now(lua_State *L) {
  push_now(L);
  return 1;
}

/* ledger.clock() -> monotonic seconds */
static int l_clock(lua_State *L) {
  lua_pushnumber(L, monotonic());
  return 1;
}

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"read", l_read},
  {"holder", l_holder},
  {"valid_ticket", l_valid_ticket},
  {"fingerprint", l_fingerprint},
  {"dir", l_dir},
  {"now", l_now},
  {"clock", l_clock},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"state", lg_state},
  {"save", lg_save},
  {"set", lg_set},
  {"get", lg_get},
  {"step", lg_step},
  {"record_step", lg_record_step},
  {"log", lg_log},
  {"run", lg_run},
  {"paths", lg_paths},
  {"crash", lg_crash},
  {"close", lg_close},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", lg_close},
  {"__close", lg_close},
  {"__index", NULL},
  {NULL, NULL}
};

int luaopen_relua_core_ledger(lua_State *L) {
  luaL_newmetatable(L, LEDGER_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlibtable(L, methods);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, SCHEMA);
  lua_setfield(L, -2, "SCHEMA");
  return 1;
}
