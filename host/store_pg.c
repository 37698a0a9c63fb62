/*
** store_pg.c: the PostgreSQL backend of the store (host/store.h), through libpq.
** A lazy module (see the Makefile): libpq and what it brings (libssl, gssapi, ldap) are
** loaded the first time a postgres:// store is opened, so start-up and the folder store
** pay nothing. luaopen_relua_core_store_pg pushes the backend for store.c (open, and
** migrate for `relua store migrate`).
**
** Everything lives in the schema "relua" of the database the URL names, created on first
** use and versioned in relua.meta (schema_version). A schema newer than this relua knows
** is refused; an older one is upgraded only by `relua store migrate`.
**
**   relua.tickets  (ticket, version, state, nevents, updated): the state document, byte for
**                  byte as the core encoded it, replaced with compare-and-swap on version
**   relua.events   (ticket, seq, data): the audit log, append-only; seq comes from the
**                  ticket row's nevents, incremented under that row's lock in the same
**                  statement, so per ticket the event order is the commit order. A state
**                  change and its event are one statement: one transaction.
**   relua.locks    (ticket, holder, pid, since): who holds a ticket (for the refusal)
**   relua.controls (lane, seq, record): a lane's control records, append-only
**
** The per-ticket lock is a session-level ADVISORY lock, pg_try_advisory_lock on a 64-bit
** hash of the ticket (hashtextextended), held by the runner's own connection: PostgreSQL
** releases it the moment that session ends (kill -9, a lost VM, pg_terminate_backend), with
** no lease to expire and no row to clean up. Not a row lock: a row lock lives in an open
** transaction, and a run commits its state and events as it goes. Not one fixed lock id
** (as Terraform's pg backend has): each ticket has its own key, so unrelated tickets never
** wait for each other. A lane's control records are appended under a transaction-level
** advisory lock on the lane's key, so deciding and appending is atomic.
**
** A lost connection is never reconnected: the lock went with the session, so every later
** operation under the lock answers RELUA_STORE_LOST and records nothing; the ticket is
** resumable by any runner. While a lock is held, a watcher thread stops the run the
** moment the connection goes (relua_cancel), not at its next write. The URL's password never appears in anything relua prints
** (describe() shows the URL without it; libpq's messages do not carry it, and every
** message goes through relua_mask).
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "relua.h"
#include "store.h"

#define SCHEMA_VERSION 1

typedef struct PgStore {
  relua_Store base;   /* first: the ops */
  PGconn *conn;
  volatile int lost;  /* the connection dropped: the session (and its locks) are gone */
  char *where;        /* the URL without its password, for messages */
  char *home;         /* the runner's local relua home, for phase outputs */
  struct relua_StoreLock *locks;   /* held, freed by close */
  unsigned prepared;  /* which of the statements below this connection has prepared */
  /* the watcher (while a lock is held): its thread, socket, wake-up pipe, message */
  int watching, watch_sock, watch_wake[2];
  pthread_t watch_thread;
  char watch_msg[512];
} PgStore;

/* A held ticket lock: the session holds the advisory lock; this names it. */
struct relua_StoreLock {
  struct relua_StoreLock *next;
  char ticket[72];
};

/* ---------------------------------------------------------------- schema */

/* steps[i] moves the schema from version i to i + 1 (steps[0]: nothing to version 1). */
static const char *const steps[] = {
  "create schema if not exists relua;"
  "create table relua.meta (key text primary key, value text not null);"
  "create table relua.tickets ("
  "  ticket text collate \"C\" primary key,"
  "  version bigint not null default 0,"
  "  state text,"
  "  nevents bigint not null default 0,"
  "  updated timestamptz not null default now());"
  "create table relua.events ("
  "  ticket text not null,"
  "  seq bigint not null,"
  "  at timestamptz not null default now(),"
  "  data text not null,"
  "  primary key (ticket, seq));"
  "create table relua.locks ("
  "  ticket text primary key,"
  "  holder text not null,"
  "  pid integer not null,"
  "  since timestamptz not null default now());"
  "create table relua.controls ("
  "  lane text collate \"C\" not null,"
  "  seq bigint not null,"
  "  at timestamptz not null default now(),"
  "  record text not null,"
  "  primary key (lane, seq));"
  "insert into relua.meta values ('schema_version', '1');",
};
#define NSTEPS ((long)(sizeof steps / sizeof steps[0]))

/* ---------------------------------------------------------------- helpers */

/* Pushes libpq's last error, its first line, masked. */
static void push_pqerror(lua_State *L, PGconn *conn, const PGresult *res) {
  const char *m = res ? PQresultErrorMessage(res) : NULL;
  const char *nl;
  size_t n;
  if (m == NULL || *m == '\0') m = conn ? PQerrorMessage(conn) : NULL;
  if (m == NULL || *m == '\0') m = "unknown error";
  n = strlen(m);
  while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
  nl = memchr(m, '\n', n);            /* libpq's DETAIL/HINT lines: keep the first */
  if (nl != NULL && nl > m) n = (size_t)(nl - m);
  relua_mask(L, m, n, NULL);
}

/* Pushes a message "store WHERE: what: libpq's reason" and returns status. */
static int fail(lua_State *L, PgStore *s, int status, const char *what, const PGresult *res) {
  push_pqerror(L, s->conn, res);
  lua_pushfstring(L, "store %s: %s: %s", s->where, what, lua_tostring(L, -1));
  lua_remove(L, -2);
  return status;
}

/*
** Was the connection lost? Reads what the server may have sent meanwhile (a FATAL
** "terminating connection" when the session is killed or the server shuts down) without
** blocking. Once lost, always lost: no reconnection, the session's locks are gone.
*/
static int lost(PgStore *s) {
  struct pollfd pfd;
  if (s->lost) return 1;
  if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) return s->lost = 1;
  pfd.fd = PQsocket(s->conn);
  pfd.events = POLLIN;
  pfd.revents = 0;
  if (pfd.fd < 0) return s->lost = 1;
  if (poll(&pfd, 1, 0) > 0) {
    PGnotify *n;
    if (!PQconsumeInput(s->conn) || PQstatus(s->conn) != CONNECTION_OK) return s->lost = 1;
    while ((n = PQnotifies(s->conn)) != NULL) PQfreemem(n);
  }
  return 0;
}

/* Pushes the message of a lost connection; returns RELUA_STORE_LOST. */
static int fail_lost(lua_State *L, PgStore *s, const char *ticket) {
  push_pqerror(L, s->conn, NULL);
  if (ticket != NULL)
    lua_pushfstring(L, "the connection to the store %s was lost (%s): this run no longer "
      "holds ticket %s and records nothing more; the ticket is resumable: run the same "
      "command again (on any runner)", s->where, lua_tostring(L, -1), ticket);
  else
    lua_pushfstring(L, "the connection to the store %s was lost (%s)", s->where,
                    lua_tostring(L, -1));
  lua_remove(L, -2);
  return RELUA_STORE_LOST;
}

/*
** Runs one statement; parameters go as binary text (bytes with a length: no NUL needed,
** nothing interpreted); lens may be NULL (each value a C string then). On failure pushes
** the message and returns the status: LOST when the connection
** went (under a lock: the lock went with it), else ERROR.
*/
static int query(lua_State *L, PgStore *s, const char *ticket, const char *what,
                 const char *sql, int n, const char *const *vals, const int *lens,
                 PGresult **out);

/* What query and run_prepared do with a result: OK with *out set, or the failure. */
static int finish(lua_State *L, PgStore *s, const char *ticket, const char *what,
                  PGresult *res, PGresult **out) {
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    *out = res;
    return RELUA_STORE_OK;
  }
  if (PQstatus(s->conn) != CONNECTION_OK) {
    s->lost = 1;
    PQclear(res);
    return fail_lost(L, s, ticket);
  }
  fail(L, s, RELUA_STORE_ERROR, what, res);
  PQclear(res);
  return RELUA_STORE_ERROR;
}

static void param_formats(int n, const char *const *vals, const int *lens, int *fmts, int *ls) {
  int i;
  for (i = 0; i < n && i < 8; i++) {
    fmts[i] = 1;
    ls[i] = lens ? lens[i] : (int)strlen(vals[i]);
  }
}

static int query(lua_State *L, PgStore *s, const char *ticket, const char *what,
                 const char *sql, int n, const char *const *vals, const int *lens,
                 PGresult **out) {
  int fmts[8], ls[8];
  if (lost(s)) return fail_lost(L, s, ticket);
  param_formats(n, vals, lens, fmts, ls);
  return finish(L, s, ticket, what,
                n > 0 ? PQexecParams(s->conn, sql, n, NULL, vals, ls, fmts, 0)
                      : PQexec(s->conn, sql), out);
}

/*
** The statements a run sends for every event and state change, prepared once per
** connection (parsed and planned once, not per event).
**
** An event that records no state change (append: r:log, r:act, a skipped phase...) commits
** with synchronous_commit off, set for its own transaction only: it is committed, visible
** and ordered when the call returns, and durable on the server's disk a moment later (the
** WAL writer, within 3 x wal_writer_delay: 0.6 s by default), and at the latest with the
** next state change, whose synchronous commit flushes the log up to it. A crash of the
** runner loses nothing; a crash of the server can lose such events of the last moment,
** never a state change nor the events committed with one, and never out of order. Without
** that, every event waits for the server's fsync (milliseconds on a shared disk).
*/
enum { PREP_APPEND, PREP_CREATE, PREP_REPLACE, NPREP };
static const struct { const char *name, *sql; int n; } prepared[NPREP] = {
  {"relua_append", /* $1 ticket, $2 the event lines */
    "with c as (select set_config('synchronous_commit', 'off', true)), "
    "t as (insert into relua.tickets as t (ticket, nevents) values ($1, 1) "
    "on conflict (ticket) do update set nevents = t.nevents + 1 returning nevents) "
    "insert into relua.events (ticket, seq, data) select $1, nevents, $2 from t, c", 2},
  {"relua_create", /* $1 ticket, $2 state, $3 event or null: the first state */
    "with t as (insert into relua.tickets as t (ticket, version, state, nevents) "
    "values ($1, 1, $2, case when $3::text is null then 0 else 1 end) "
    "on conflict (ticket) do update set version = t.version + 1, state = excluded.state, "
    "nevents = t.nevents + excluded.nevents, updated = now() "
    "where t.state is null returning version, nevents), "
    "e as (insert into relua.events (ticket, seq, data) "
    "select $1, nevents, $3 from t where $3::text is not null) "
    "select version from t", 3},
  {"relua_replace", /* $1 ticket, $2 state, $3 event or null, $4 the expected version */
    "with t as (update relua.tickets set version = version + 1, state = $2, "
    "nevents = nevents + case when $3::text is null then 0 else 1 end, updated = now() "
    "where ticket = $1 and version = $4::text::bigint and state is not null "
    "returning version, nevents), "
    "e as (insert into relua.events (ticket, seq, data) "
    "select $1, nevents, $3 from t where $3::text is not null) "
    "select version from t", 4},
};

/* Runs the prepared statement `which` (preparing it on this connection first). */
static int run_prepared(lua_State *L, PgStore *s, const char *ticket, const char *what,
                        int which, const char *const *vals, const int *lens, PGresult **out) {
  int fmts[8], ls[8], n = prepared[which].n, st;
  if (lost(s)) return fail_lost(L, s, ticket);
  if (!(s->prepared & (1u << which))) {
    PGresult *res;
    st = finish(L, s, ticket, what, PQprepare(s->conn, prepared[which].name,
                                               prepared[which].sql, n, NULL), &res);
    if (st != RELUA_STORE_OK) return st;
    PQclear(res);
    s->prepared |= 1u << which;
  }
  param_formats(n, vals, lens, fmts, ls);
  return finish(L, s, ticket, what,
                PQexecPrepared(s->conn, prepared[which].name, n, vals, ls, fmts, 0), out);
}

/* Runs a statement whose result is not needed; OK or a pushed message. */
static int command(lua_State *L, PgStore *s, const char *ticket, const char *what,
                   const char *sql, int n, const char *const *vals, const int *lens) {
  PGresult *res;
  int st = query(L, s, ticket, what, sql, n, vals, lens, &res);
  if (st == RELUA_STORE_OK) PQclear(res);
  return st;
}

static void rollback(PgStore *s) {
  if (!lost(s)) PQclear(PQexec(s->conn, "rollback"));
}

/* Pushes column 0 of every row as an array of strings. */
static void push_column(lua_State *L, PGresult *res) {
  int i, n = PQntuples(res);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    lua_rawseti(L, -2, i + 1);
  }
}

static int64_t value64(PGresult *res, int row, int col) {
  return (int64_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* ---------------------------------------------------------------- the URL */

/* The URL without its password (userinfo "user:pw@" -> "user@"; "password=" parameters
   dropped), malloc'd; NULL when memory ran out. */
static char *display_url(const char *url) {
  size_t n = strlen(url);
  char *out = malloc(n + 1), *o = out;
  const char *p = url, *scheme = strstr(url, "://");
  if (out == NULL) return NULL;
  if (scheme != NULL) {
    const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#"), *at = NULL, *q;
    for (q = auth; q < end; q++) if (*q == '@') at = q;
    memcpy(o, url, (size_t)(auth - url));
    o += auth - url;
    p = auth;
    if (at != NULL) {
      const char *colon = memchr(auth, ':', (size_t)(at - auth));
      size_t k = (size_t)((colon ? colon : at) - auth);
      memcpy(o, auth, k);
      o += k;
      p = at;
    }
  }
  while (*p) {
    if ((*p == '?' || *p == '&') && strncmp(p + 1, "password=", 9) == 0) {
      const char *next = strchr(p + 1, '&');
      if (next == NULL) { p += strlen(p); continue; }
      if (*p == '?') { *o++ = '?'; p = next + 1; }
      else p = next;
      continue;
    }
    *o++ = *p++;
  }
  *o = '\0';
  return out;
}

/* ---------------------------------------------------------------- the schema */

/* The schema's version into *v: 0 when there is none (no relua.meta: undefined_table, or
   no schema relua: invalid_schema_name). One question, asked on every connection. */
static int read_version(lua_State *L, PgStore *s, long *v) {
  PGresult *res;
  const char *state;
  if (lost(s)) return fail_lost(L, s, NULL);
  res = PQexec(s->conn, "select value from relua.meta where key = 'schema_version'");
  *v = 0;
  if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
    if (PQntuples(res) == 1) *v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return RELUA_STORE_OK;
  }
  state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (state != NULL && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0)) {
    PQclear(res);
    return RELUA_STORE_OK;
  }
  if (PQstatus(s->conn) != CONNECTION_OK) {
    s->lost = 1;
    PQclear(res);
    return fail_lost(L, s, NULL);
  }
  fail(L, s, RELUA_STORE_ERROR, "reading the schema version", res);
  PQclear(res);
  return RELUA_STORE_ERROR;
}

/*
** Makes sure the schema is this relua's. It is created on first use; migrate != 0 also
** upgrades an older one. Serialized by a transaction-level advisory lock on a fixed key,
** held only for the moment of a creation or migration: two runners on a new database do
** not both create it. *found: the version before.
*/
static int ensure_schema(lua_State *L, PgStore *s, int migrate, long *found) {
  long v;
  int st = read_version(L, s, found);
  char ver[32];
  const char *vals[1];
  if (st != RELUA_STORE_OK) return st;
  if (*found == SCHEMA_VERSION) return RELUA_STORE_OK;
  if (*found > SCHEMA_VERSION) {
    lua_pushfstring(L, "the store %s has relua schema version %d, newer than this relua "
      "knows (%d): upgrade relua on this runner", s->where, (int)*found, SCHEMA_VERSION);
    return RELUA_STORE_CORRUPT;
  }
  if (*found > 0 && !migrate) {
    lua_pushfstring(L, "the store %s has relua schema version %d, older than this relua's "
      "(%d): upgrade it with `relua store migrate` (the same RELUA_STORE)", s->where,
      (int)*found, SCHEMA_VERSION);
    return RELUA_STORE_CORRUPT;
  }
  /* A session-level lock, taken before the transaction that reads the version again: a
     transaction begun before the lock was granted could see the catalog as it was then,
     without the tables another runner has just created. */
  st = command(L, s, NULL, "creating relua's schema",
               "select pg_advisory_lock(hashtextextended('relua.schema', 0))", 0, NULL, NULL);
  if (st != RELUA_STORE_OK) return st;
  st = read_version(L, s, &v);                             /* again, under the lock */
  if (st == RELUA_STORE_OK && v < SCHEMA_VERSION) {
    st = command(L, s, NULL, "creating relua's schema", "begin", 0, NULL, NULL);
    for (; st == RELUA_STORE_OK && v < SCHEMA_VERSION && v < NSTEPS; v++) {
      st = command(L, s, NULL, "creating relua's schema", steps[v], 0, NULL, NULL);
      if (st == RELUA_STORE_OK && v > 0) {
        snprintf(ver, sizeof ver, "%ld", v + 1);
        vals[0] = ver;
        st = command(L, s, NULL, "upgrading relua's schema",
                     "update relua.meta set value = $1 where key = 'schema_version'", 1, vals,
                     NULL);
      }
    }
    if (st == RELUA_STORE_OK)
      st = command(L, s, NULL, "creating relua's schema", "commit", 0, NULL, NULL);
    else
      rollback(s);
  }
  if (!lost(s))
    PQclear(PQexec(s->conn, "select pg_advisory_unlock(hashtextextended('relua.schema', 0))"));
  if (st == RELUA_STORE_OK && v > SCHEMA_VERSION)          /* a newer relua got there first */
    return ensure_schema(L, s, 0, found);
  return st;
}

/* ---------------------------------------------------------------- the watcher */

/*
** While a run holds a ticket, a thread watches the session's socket: when the server
** closes it (pg_terminate_backend, a shutdown, a restart) or it fails (the TCP keepalives
** of a dead peer), the run no longer holds the ticket, so it is stopped at once, whatever
** it is doing (a long r:sh, a sleep, Lua code), not at its next write: relua_cancel
** interrupts the main thread as SIGTERM does (children killed, the phase cannot catch it)
** with the error {code="lost"}. The thread only polls (POLLRDHUP: the peer's FIN, never
** data), so libpq keeps the socket to itself. Stopped before the last lock is released
** and before the connection is closed.
*/
static void *watch_main(void *arg) {
  PgStore *s = (PgStore *)arg;
  for (;;) {
    struct pollfd pfd[2];
    int r;
    pfd[0].fd = s->watch_sock;
    pfd[0].events = POLLRDHUP;
    pfd[1].fd = s->watch_wake[0];
    pfd[1].events = POLLIN;
    pfd[0].revents = pfd[1].revents = 0;
    r = poll(pfd, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || pfd[1].revents != 0) break;               /* asked to stop */
    if (pfd[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
      if (!s->lost) relua_cancel(s->watch_msg);
      break;
    }
  }
  return NULL;
}

/* Starts the watcher for the lock on ticket (nothing when it runs already). 0, or -1. */
static int watch_start(PgStore *s, const char *ticket) {
  sigset_t all, old;
  int rc;
  if (s->watching) return 0;
  s->watch_sock = PQsocket(s->conn);
  if (s->watch_sock < 0 || pipe2(s->watch_wake, O_CLOEXEC) != 0) return -1;
  snprintf(s->watch_msg, sizeof s->watch_msg, "the connection to the store %s was lost: this "
           "run no longer holds ticket %s and records nothing more; the ticket is resumable: "
           "run the same command again (on any runner)", s->where, ticket);
  sigfillset(&all);                 /* the thread takes no signal: they are the main thread's */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&s->watch_thread, NULL, watch_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    close(s->watch_wake[0]);
    close(s->watch_wake[1]);
    return -1;
  }
  s->watching = 1;
  return 0;
}

static void watch_stop(PgStore *s) {
  if (!s->watching) return;
  while (write(s->watch_wake[1], "x", 1) < 0 && errno == EINTR) {}
  pthread_join(s->watch_thread, NULL);
  close(s->watch_wake[0]);
  close(s->watch_wake[1]);
  s->watching = 0;
}

/* ---------------------------------------------------------------- opening and closing */

static void pg_close(relua_Store *base) {
  PgStore *s = (PgStore *)base;
  if (s == NULL) return;
  watch_stop(s);                            /* before its socket closes */
  if (s->conn != NULL) PQfinish(s->conn);   /* the session ends: its locks go with it */
  while (s->locks != NULL) {
    relua_StoreLock *next = s->locks->next;
    free(s->locks);
    s->locks = next;
  }
  free(s->where);
  free(s->home);
  free(s);
}

/* The connection parameters relua sets, unless a PG* variable says otherwise (and the
   URL's own parameters override them all: it comes last). */
static void add_default(const char **kw, const char **val, int *n, const char *key,
                        const char *env, const char *value) {
  if (env != NULL && getenv(env) != NULL) return;
  kw[*n] = key;
  val[*n] = value;
  (*n)++;
}

static const relua_StoreOps pg_ops;

/* The server's notices ("schema relua already exists, skipping") are not for people. */
static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static int open_store(lua_State *L, const char *url, const char *home, int migrate,
                      long *found, relua_Store **out) {
  const char *kw[12], *val[12];
  int n = 0, st;
  PgStore *s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "store: out of memory");
  s->base.ops = &pg_ops;
  s->where = display_url(url);
  if (home == NULL || *home == '\0') home = getenv("RELUA_HOME");
  s->home = strdup(home != NULL && *home != '\0' ? home : ".relua");
  if (s->where == NULL || s->home == NULL) {
    pg_close(&s->base);
    return luaL_error(L, "store: out of memory");
  }
  add_default(kw, val, &n, "application_name", "PGAPPNAME", "relua");
  add_default(kw, val, &n, "connect_timeout", "PGCONNECT_TIMEOUT", "10");
  /* no GSSAPI-encryption probe (it reads the Kerberos configuration on every connection);
     TLS and Kerberos authentication are unaffected, and PGGSSENCMODE or the URL's
     gssencmode=prefer bring the probe back */
  add_default(kw, val, &n, "gssencmode", "PGGSSENCMODE", "disable");
  /* a dead peer (a lost VM, a cut network) is noticed within about 15 s, not hours */
  add_default(kw, val, &n, "keepalives_idle", NULL, "5");
  add_default(kw, val, &n, "keepalives_interval", NULL, "2");
  add_default(kw, val, &n, "keepalives_count", NULL, "3");
  add_default(kw, val, &n, "tcp_user_timeout", NULL, "15000");
  kw[n] = "dbname";            /* last: what the URL says overrides the defaults above */
  val[n] = url;
  n++;
  kw[n] = val[n] = NULL;
  s->conn = PQconnectdbParams(kw, val, 1);
  if (s->conn != NULL) PQsetNoticeProcessor(s->conn, quiet, NULL);
  if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) {
    push_pqerror(L, s->conn, NULL);
    lua_pushfstring(L, "cannot connect to the store %s: %s", s->where, lua_tostring(L, -1));
    lua_remove(L, -2);
    pg_close(&s->base);
    return RELUA_STORE_ERROR;
  }
  st = ensure_schema(L, s, migrate, found);
  if (st != RELUA_STORE_OK) {
    pg_close(&s->base);
    return st;
  }
  *out = &s->base;
  return RELUA_STORE_OK;
}

static int pg_open(lua_State *L, const char *url, const char *home, relua_Store **out) {
  long found;
  return open_store(L, url, home, 0, &found, out);
}

static int pg_describe(relua_Store *base, lua_State *L) {
  lua_pushfstring(L, "postgres %s", ((PgStore *)base)->where);
  return RELUA_STORE_OK;
}

static int pg_where(relua_Store *base, lua_State *L, const char *ticket) {
  lua_pushfstring(L, "ticket %s in %s", ticket, ((PgStore *)base)->where);
  return RELUA_STORE_OK;
}

/* Phase outputs stay on the runner: HOME/releases/TICKET, as with the folder store. */
static int pg_outdir(relua_Store *base, lua_State *L, const char *ticket) {
  lua_pushfstring(L, "%s/releases/%s", ((PgStore *)base)->home, ticket);
  return RELUA_STORE_OK;
}

/* ---------------------------------------------------------------- the ticket lock */

#define TICKET_KEY "hashtextextended('relua.ticket:' || $1::text, 0)"

/* The holder record of whoever holds ticket's lock now, pushed (nil when none). */
static int push_live_holder(lua_State *L, PgStore *s, const char *ticket) {
  PGresult *res;
  const char *vals[1];
  int st;
  vals[0] = ticket;
  st = query(L, s, NULL, "reading a lock's holder",
    "select k.holder from relua.locks k where k.ticket = $1 and exists ("
    "select 1 from pg_locks a where a.locktype = 'advisory' and a.granted "
    "and a.pid = k.pid and a.objsubid = 1 "
    "and ((a.classid::bigint << 32) | a.objid::bigint) = " TICKET_KEY ")", 1, vals, NULL, &res);
  if (st != RELUA_STORE_OK) return st;
  if (PQntuples(res) == 1)
    lua_pushlstring(L, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
  else
    lua_pushnil(L);
  PQclear(res);
  return RELUA_STORE_OK;
}

/*
** Takes the ticket's advisory lock without waiting and records the holder in the same
** statement. Refused, the live holder is named: its row may be a moment behind its lock,
** and a holder whose session is ending (its client killed) lets go a moment later, so
** both are looked at again, briefly (at most 1 s), until one of them answers.
*/
static int pg_lock(relua_Store *base, lua_State *L, const char *ticket, const char *holder,
                   relua_StoreLock **lk) {
  PgStore *s = (PgStore *)base;
  const char *vals[2];
  int tries, st;
  relua_StoreLock *l = calloc(1, sizeof *l);
  if (l == NULL) return luaL_error(L, "store: out of memory");
  snprintf(l->ticket, sizeof l->ticket, "%s", ticket);
  vals[0] = ticket;
  vals[1] = holder;
  for (tries = 0; tries < 100; tries++) {
    PGresult *res;
    st = query(L, s, NULL, "taking a ticket's lock",
      "with l as (select pg_try_advisory_lock(" TICKET_KEY ") as ok) "
      "insert into relua.locks as k (ticket, holder, pid) "
      "select $1, $2, pg_backend_pid() from l where ok "
      "on conflict (ticket) do update set holder = excluded.holder, pid = excluded.pid, "
      "since = now() returning pid", 2, vals, NULL, &res);
    if (st != RELUA_STORE_OK) break;
    if (PQntuples(res) == 1) {
      PQclear(res);
      if (watch_start(s, ticket) != 0) {   /* a run must not outlive its lock unnoticed */
        PQclear(PQexecParams(s->conn, "select pg_advisory_unlock(" TICKET_KEY ")", 1, NULL,
                             vals, NULL, NULL, 0));
        free(l);
        lua_pushfstring(L, "store %s: cannot watch the connection that holds ticket %s: %s",
                        s->where, ticket, strerror(errno));
        return RELUA_STORE_ERROR;
      }
      l->next = s->locks;
      s->locks = l;
      *lk = l;
      return RELUA_STORE_OK;
    }
    PQclear(res);
    st = push_live_holder(L, s, ticket);
    if (st != RELUA_STORE_OK) break;
    if (!lua_isnil(L, -1)) {
      free(l);
      return RELUA_STORE_LOCKED;                           /* [holder] */
    }
    lua_pop(L, 1);
    usleep(10000);
  }
  free(l);
  if (st == RELUA_STORE_OK) {
    lua_pushliteral(L, "pid=? host=? since=?");
    return RELUA_STORE_LOCKED;
  }
  return st == RELUA_STORE_LOST ? RELUA_STORE_ERROR : st;  /* nothing was held yet */
}

static void pg_unlock(relua_Store *base, relua_StoreLock *lk) {
  PgStore *s = (PgStore *)base;
  const char *vals[1];
  PGresult *res;
  relua_StoreLock **p;
  if (lk == NULL) return;
  for (p = &s->locks; *p != NULL && *p != lk; p = &(*p)->next) {}
  if (*p == NULL) return;                  /* not ours (or released already) */
  *p = lk->next;
  if (s->locks == NULL) watch_stop(s);     /* the run lets go: a loss now is no loss */
  vals[0] = lk->ticket;
  if (!lost(s)) {          /* else the session, and its lock, are gone already */
    res = PQexecParams(s->conn, "select pg_advisory_unlock(" TICKET_KEY ")", 1, NULL, vals,
                       NULL, NULL, 0);
    PQclear(res);
  }
  free(lk);
}

static int pg_holder(relua_Store *base, lua_State *L, const char *ticket) {
  return push_live_holder(L, (PgStore *)base, ticket);
}

/* ---------------------------------------------------------------- state and events */

static int pg_read(relua_Store *base, lua_State *L, const char *ticket, int64_t *version) {
  PgStore *s = (PgStore *)base;
  PGresult *res;
  const char *vals[1];
  int st;
  vals[0] = ticket;
  st = query(L, s, NULL, "reading a ticket's state",
             "select state, version from relua.tickets where ticket = $1 and state is not null",
             1, vals, NULL, &res);
  if (st != RELUA_STORE_OK) return st;
  if (PQntuples(res) == 0) {
    PQclear(res);
    lua_pushfstring(L, "no state for ticket %s in the store %s", ticket, s->where);
    return RELUA_STORE_NOTFOUND;
  }
  lua_pushlstring(L, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
  *version = value64(res, 0, 1);
  PQclear(res);
  return RELUA_STORE_OK;
}

/*
** The new state and its event in one statement (one transaction): the ticket row's update
** is the compare-and-swap (version = expect) and locks the row, the event's seq is taken
** from it. expect == 0: the ticket must have no state (a row made by events alone is fine).
*/
static int pg_replace(relua_Store *base, lua_State *L, relua_StoreLock *lk, const char *ticket,
                      const char *doc, size_t len, int64_t expect, const char *event,
                      size_t elen, int64_t *version) {
  PgStore *s = (PgStore *)base;
  PGresult *res;
  const char *vals[4];
  int lens[4], st;
  char ver[32];
  (void)lk;
  if (len > 0x7fffffff || elen > 0x7fffffff) {
    lua_pushfstring(L, "store %s: the state of ticket %s is too large", s->where, ticket);
    return RELUA_STORE_ERROR;
  }
  snprintf(ver, sizeof ver, "%lld", (long long)expect);
  vals[0] = ticket; lens[0] = (int)strlen(ticket);
  vals[1] = doc;    lens[1] = (int)len;
  vals[2] = event;  lens[2] = event ? (int)elen : 0;    /* NULL: SQL null, no event */
  vals[3] = ver;    lens[3] = (int)strlen(ver);
  /* the test crash points: all before the one commit, so a crash loses both or neither */
  {
    int sig = relua_store_crash_due(L, "state-write");
    if (sig != 0) kill(getpid(), sig);
  }
  relua_store_crash(L, "state-saved");
  relua_store_crash(L, "log-event");
  st = run_prepared(L, s, ticket, "replacing a ticket's state",
                    expect == 0 ? PREP_CREATE : PREP_REPLACE, vals, lens, &res);
  if (st != RELUA_STORE_OK) return st;
  if (PQntuples(res) == 1) {
    *version = value64(res, 0, 0);
    PQclear(res);
    return RELUA_STORE_OK;
  }
  PQclear(res);
  lua_pushfstring(L, "the state of ticket %s in the store %s is newer than the one this run "
                  "read (version %s): a stale writer cannot overwrite it", ticket, s->where,
                  ver);
  return RELUA_STORE_CONFLICT;
}

static int pg_append(relua_Store *base, lua_State *L, relua_StoreLock *lk, const char *ticket,
                     const char *data, size_t len, int sync) {
  PgStore *s = (PgStore *)base;
  PGresult *res;
  const char *vals[2];
  int lens[2], st;
  (void)sync;  /* every event commits asynchronously (see prepared[] above) */
  if (len > 0x7fffffff) {
    lua_pushfstring(L, "store %s: an event of ticket %s is too large", s->where, ticket);
    return RELUA_STORE_ERROR;
  }
  vals[0] = ticket; lens[0] = (int)strlen(ticket);
  vals[1] = data;   lens[1] = (int)len;
  st = run_prepared(L, s, lk ? ticket : NULL, "recording an event", PREP_APPEND, vals, lens,
                    &res);
  if (st == RELUA_STORE_OK) PQclear(res);
  return st;
}

static int pg_events(relua_Store *base, lua_State *L, const char *ticket) {
  PgStore *s = (PgStore *)base;
  PGresult *res;
  const char *vals[1];
  luaL_Buffer b;
  int i, n, st;
  vals[0] = ticket;
  st = query(L, s, NULL, "reading a ticket's events",
             "select data from relua.events where ticket = $1 order by seq", 1, vals, NULL,
             &res);
  if (st != RELUA_STORE_OK) return st;
  n = PQntuples(res);
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) luaL_addlstring(&b, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
  PQclear(res);
  luaL_pushresult(&b);
  return RELUA_STORE_OK;
}

/* Runs a query and pushes its first column as an array. */
static int push_list(lua_State *L, PgStore *s, const char *what, const char *sql,
                     const char *param) {
  PGresult *res;
  const char *vals[1];
  int st;
  vals[0] = param;
  st = query(L, s, NULL, what, sql, param ? 1 : 0, vals, NULL, &res);
  if (st != RELUA_STORE_OK) return st;
  push_column(L, res);
  PQclear(res);
  return RELUA_STORE_OK;
}

static int pg_tickets(relua_Store *base, lua_State *L) {
  return push_list(L, (PgStore *)base, "listing tickets",
    "select ticket from relua.tickets where state is not null order by ticket",
    NULL);
}

/* ---------------------------------------------------------------- lane control records */

#define LANE_KEY "hashtextextended('relua.lane:' || $1::text, 0)"

static int pg_controls(relua_Store *base, lua_State *L, const char *lane) {
  return push_list(L, (PgStore *)base, "reading a lane's control records",
    "select record from relua.controls where lane = $1 order by seq", lane);
}

static int pg_lanes(relua_Store *base, lua_State *L) {
  return push_list(L, (PgStore *)base, "listing lanes",
    "select distinct lane from relua.controls order by lane", NULL);
}

/*
** In one transaction: the lane's lock (a transaction-level advisory lock: deciders on the
** same lane wait for each other, on other lanes they do not), its records, decide, the
** append, commit. Anything but OK rolls back: nothing is appended.
*/
static int pg_control_append(relua_Store *base, lua_State *L, const char *lane,
                             relua_StoreDecide decide, void *ud) {
  PgStore *s = (PgStore *)base;
  PGresult *res;
  const char *vals[2];
  int lens[2], st;
  vals[0] = lane;
  st = command(L, s, NULL, "appending a control record", "begin", 0, NULL, NULL);
  if (st != RELUA_STORE_OK) return st;
  st = command(L, s, NULL, "taking a lane's lock", "select pg_advisory_xact_lock(" LANE_KEY ")",
               1, vals, NULL);
  if (st == RELUA_STORE_OK)
    st = query(L, s, NULL, "reading a lane's control records",
               "select record from relua.controls where lane = $1 order by seq", 1, vals, NULL,
               &res);
  if (st != RELUA_STORE_OK) {
    rollback(s);
    return st;
  }
  push_column(L, res);                                     /* [records] */
  PQclear(res);
  st = decide(L, ud);                                      /* [record | nil] or [msg] */
  if (st != RELUA_STORE_OK || lua_isnil(L, -1)) {
    rollback(s);
    return st;
  }
  {
    size_t n;
    vals[1] = lua_tolstring(L, -1, &n);                    /* alive on the stack */
    lens[0] = (int)strlen(lane);
    lens[1] = (int)n;
  }
  st = command(L, s, NULL, "appending a control record",
    "insert into relua.controls (lane, seq, record) select $1, coalesce(max(seq), 0) + 1, $2 "
    "from relua.controls where lane = $1", 2, vals, lens);
  if (st == RELUA_STORE_OK)
    st = command(L, s, NULL, "appending a control record", "commit", 0, NULL, NULL);
  if (st != RELUA_STORE_OK) {
    rollback(s);
    lua_remove(L, -2);                                     /* [msg] */
    return st;
  }
  return RELUA_STORE_OK;                                   /* [record] */
}

static const relua_StoreOps pg_ops = {
  "postgres",
  pg_close,
  pg_describe,
  pg_where,
  pg_outdir,
  pg_lock,
  pg_unlock,
  pg_holder,
  pg_read,
  pg_replace,
  pg_append,
  pg_events,
  pg_tickets,
  pg_controls,
  pg_control_append,
  pg_lanes,
};

/* relua store migrate: creates relua's schema, or upgrades an older one. */
static int pg_migrate(lua_State *L, const char *url, int64_t *found, int64_t *now) {
  relua_Store *st = NULL;
  long v = 0;
  int status = open_store(L, url, NULL, 1, &v, &st);
  if (status != RELUA_STORE_OK) return status;
  pg_close(st);
  *found = v;
  *now = SCHEMA_VERSION;
  return RELUA_STORE_OK;
}

static const relua_StoreBackend backend = { "postgres", pg_open, pg_migrate };

/* relua.core.store_pg (store.c loads it through relua_open_owned): the backend. */
int luaopen_relua_core_store_pg(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&backend);
  return 1;
}

