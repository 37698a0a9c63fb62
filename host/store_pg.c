/*
** store_pg.c: the PostgreSQL backend of the store (module relua.store.pg), through libpq.
** A lazy module (see the Makefile): libpq and what it brings (libssl, gssapi, ldap) are
** loaded the first time a postgres:// store is opened, so start-up and the folder store
** pay nothing.
**
** Everything lives in the schema "relua" of the database the URL names, created on first
** use and versioned in relua.meta (schema_version). A schema newer than this relua knows
** is refused; an older one is upgraded only by `relua store migrate`.
**
**   relua.tickets  (ticket, version, state, nevents, updated): the state document, as the
**                  folder store writes it, replaced with compare-and-swap on version
**   relua.events   (ticket, seq, line): the audit log, append-only; seq comes from the
**                  ticket row's nevents, incremented under that row's lock in the same
**                  statement, so per ticket the event order is the commit order
**   relua.locks    (ticket, holder, pid, since): who holds a ticket (for the refusal)
**   relua.controls (lane, seq, record): a lane's control records, append-only
**
** The per-ticket lock is a session-level ADVISORY lock, pg_try_advisory_lock on a 64-bit
** hash of the ticket (hashtextextended), held by the runner's own connection: PostgreSQL
** releases it the moment that session ends (kill -9, a lost VM, pg_terminate_backend),
** with no lease to expire and no row to clean up. Not a row lock, because a row lock
** lives in an open transaction and the run must commit its state and events as it goes.
** Not one fixed lock id (Terraform's pg backend): each ticket has its own key, so
** unrelated tickets never wait for each other. A lane's control records are appended
** under a transaction-level advisory lock on the lane's key, so deciding and appending is
** atomic.
**
** A lost connection is never reconnected: the lock went with the session, so the run stops
** (code "store-lost") and records nothing further; the ticket is resumable by any runner.
** The URL's password never appears in anything relua prints (where() shows the URL
** without it; PQerrorMessage does not carry it).
*/
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "relua.h"

#define PG_MT "relua.store.pg.Conn"
#define SCHEMA_VERSION 1

typedef struct Pg {
  PGconn *conn;
  int lost;           /* the connection dropped: the session (and its locks) are gone */
} Pg;

/* Uservalue 1 of a Pg: the URL without its password, for messages. */

/* ---------------------------------------------------------------- schema */

/* Each step moves the schema from version i to i + 1 (steps[0]: nothing to version 1). */
static const char *const steps[] = {
  "create schema if not exists relua;"
  "create table relua.meta (key text primary key, value text not null);"
  "create table relua.tickets ("
  "  ticket text primary key,"
  "  version bigint not null default 0,"
  "  state text,"
  "  nevents bigint not null default 0,"
  "  updated timestamptz not null default now());"
  "create table relua.events ("
  "  ticket text not null,"
  "  seq bigint not null,"
  "  at timestamptz not null default now(),"
  "  line text not null,"
  "  primary key (ticket, seq));"
  "create table relua.locks ("
  "  ticket text primary key,"
  "  holder text not null,"
  "  pid integer not null,"
  "  since timestamptz not null default now());"
  "create table relua.controls ("
  "  lane text not null,"
  "  seq bigint not null,"
  "  at timestamptz not null default now(),"
  "  record text not null,"
  "  primary key (lane, seq));"
  "insert into relua.meta values ('schema_version', '1');",
};
#define NSTEPS ((int)(sizeof steps / sizeof steps[0]))

/* ---------------------------------------------------------------- helpers */

static Pg *check_pg(lua_State *L, int idx) {
  Pg *p = (Pg *)luaL_checkudata(L, idx, PG_MT);
  if (p->conn == NULL) luaL_error(L, "store: the PostgreSQL connection is closed");
  return p;
}

static const char *where(lua_State *L, int self) {
  const char *w;
  lua_getiuservalue(L, self, 1);
  w = lua_tostring(L, -1);
  lua_pop(L, 1);           /* the uservalue keeps it alive */
  return w ? w : "postgres";
}

/* Pushes libpq's last error, one line, masked. */
static const char *push_pqerror(lua_State *L, PGconn *conn, PGresult *res) {
  const char *m = res ? PQresultErrorMessage(res) : NULL;
  size_t n;
  if (m == NULL || *m == '\0') m = PQerrorMessage(conn);
  if (m == NULL || *m == '\0') m = "unknown error";
  n = strlen(m);
  while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
  {
    const char *nl = memchr(m, '\n', n);     /* libpq's detail lines: keep the first */
    if (nl != NULL && (size_t)(nl - m) > 0) n = (size_t)(nl - m);
  }
  return relua_mask(L, m, n, NULL);
}

/*
** Was the connection lost? Reads what the server may have sent meanwhile (a FATAL
** "terminating connection" when the session is killed or the server shut down) without
** blocking. Once lost, always lost.
*/
static int lost(Pg *p) {
  if (p->lost) return 1;
  if (PQstatus(p->conn) != CONNECTION_OK) return p->lost = 1;
  {
    struct pollfd pfd;
    pfd.fd = PQsocket(p->conn);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0) return p->lost = 1;
    if (poll(&pfd, 1, 0) > 0) {
      if (!PQconsumeInput(p->conn) || PQstatus(p->conn) != CONNECTION_OK) return p->lost = 1;
      {
        PGnotify *n;
        while ((n = PQnotifies(p->conn)) != NULL) PQfreemem(n);
      }
    }
  }
  return 0;
}

/* Raises the structured "store-lost" error (exit 1). */
static int raise_lost(lua_State *L, int self, Pg *p, const char *ticket) {
  const char *why = push_pqerror(L, p->conn, NULL);
  if (ticket != NULL)
    return relua_raise(L, 1, "store-lost",
      "the connection to the store %s was lost (%s): this run no longer holds ticket %s "
      "and records nothing more; the ticket is resumable: run the same command again "
      "(on any runner)", where(L, self), why, ticket);
  return relua_raise(L, 1, "store-lost", "the connection to the store %s was lost (%s)",
                     where(L, self), why);
}

/*
** Runs one statement with text parameters. Returns the result (PGRES_COMMAND_OK or
** PGRES_TUPLES_OK), or NULL with the masked error message pushed; a lost connection
** marks the Pg lost (the caller decides how to say it).
*/
static PGresult *exec(lua_State *L, Pg *p, const char *sql, int n, const char *const *vals) {
  PGresult *res;
  ExecStatusType st;
  if (lost(p)) {
    push_pqerror(L, p->conn, NULL);
    return NULL;
  }
  res = n > 0 ? PQexecParams(p->conn, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(p->conn, sql);
  st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return res;
  push_pqerror(L, p->conn, res);
  if (PQstatus(p->conn) != CONNECTION_OK) p->lost = 1;
  PQclear(res);
  return NULL;
}

/* exec, raising on failure: "store-lost" when the connection went, else "store". */
static PGresult *exec_or_raise(lua_State *L, int self, Pg *p, const char *ticket,
                               const char *sql, int n, const char *const *vals) {
  PGresult *res = exec(L, p, sql, n, vals);
  if (res != NULL) return res;
  if (p->lost) {
    lua_pop(L, 1);
    raise_lost(L, self, p, ticket);
  }
  relua_raise(L, 1, "store", "store %s: %s", where(L, self), lua_tostring(L, -1));
  return NULL;
}

/* The connection parameters relua sets unless the URL or a PG* variable says otherwise. */
static void add_default(const char **kw, const char **val, int *n, const char *key,
                        const char *env, const char *value) {
  if (env != NULL && getenv(env) != NULL) return;
  kw[*n] = key;
  val[*n] = value;
  (*n)++;
}

/*
** Pushes url without its password, for messages: postgres://user:PW@host/db ->
** postgres://user@host/db, and password=... in the query string dropped. relua_mask then
** catches anything else that looks like a credential.
*/
static void push_display(lua_State *L, const char *url) {
  luaL_Buffer b;
  const char *s = url, *scheme = strstr(url, "://");
  luaL_buffinit(L, &b);
  if (scheme != NULL) {
    const char *auth = scheme + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = NULL, *q;
    for (q = auth; q < end; q++) if (*q == '@') at = q;
    luaL_addlstring(&b, url, (size_t)(auth - url));
    if (at != NULL) {
      const char *colon = memchr(auth, ':', (size_t)(at - auth));
      luaL_addlstring(&b, auth, (size_t)((colon ? colon : at) - auth));
      s = at;                          /* "@host..." */
    } else
      s = auth;
  }
  while (*s) {                          /* copy, leaving out password=... parameters */
    if ((*s == '?' || *s == '&') && strncmp(s + 1, "password=", 9) == 0) {
      const char *next = strchr(s + 1, '&');
      if (*s == '?') {
        luaL_addchar(&b, '?');
        s = next ? next + 1 : s + strlen(s);
        if (*s == '\0') { luaL_buffsub(&b, 1); }
      } else
        s = next ? next : s + strlen(s);
      continue;
    }
    luaL_addchar(&b, *s++);
  }
  luaL_pushresult(&b);
  {
    size_t n;
    const char *d = lua_tolstring(L, -1, &n);
    relua_mask(L, d, n, NULL);
    lua_remove(L, -2);
  }
}

/* ---------------------------------------------------------------- schema on first use */

/*
** The schema's version: 0 when there is none. Two questions: relua.meta must exist
** before a query that names it can even be planned. Returns -1 with the message pushed
** when a query fails.
*/
static long read_version(lua_State *L, Pg *p) {
  long v = 0;
  PGresult *res = exec(L, p, "select to_regclass('relua.meta') is not null", 0, NULL);
  if (res == NULL) return -1;
  if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
    PQclear(res);
    res = exec(L, p, "select value from relua.meta where key = 'schema_version'", 0, NULL);
    if (res == NULL) return -1;
    if (PQntuples(res) == 1) v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
  }
  PQclear(res);
  return v;
}

/* read_version, raising on failure. */
static long schema_version(lua_State *L, int self, Pg *p) {
  long v = read_version(L, p);
  if (v >= 0) return v;
  if (p->lost) {
    lua_pop(L, 1);
    raise_lost(L, self, p, NULL);
  }
  return relua_raise(L, 1, "store", "store %s: %s", where(L, self), lua_tostring(L, -1));
}

/*
** Moves the schema up to SCHEMA_VERSION (create = 0: only from nothing, i.e. first use).
** Serialized by a transaction-level advisory lock on a fixed key, held only for the
** moment of the migration: two runners on a new database do not both create it.
** Returns the version found before; raises when the schema is newer than this relua, or
** older and create == 0 ("run relua store migrate").
*/
static long ensure_schema(lua_State *L, int self, Pg *p, int migrate) {
  long found, v;
  PGresult *res;
  found = schema_version(L, self, p);
  if (found == SCHEMA_VERSION) return found;
  if (found > SCHEMA_VERSION)
    return relua_raise(L, 2, "store-schema",
      "the store %s has schema version %I, newer than this relua knows (%d): upgrade "
      "relua on this runner", where(L, self), (lua_Integer)found, SCHEMA_VERSION);
  if (found > 0 && !migrate)
    return relua_raise(L, 2, "store-schema",
      "the store %s has schema version %I, older than this relua's (%d): run "
      "`relua store migrate` (with the same RELUA_STORE) to upgrade it", where(L, self),
      (lua_Integer)found, SCHEMA_VERSION);
  res = exec_or_raise(L, self, p, NULL,
    "begin; select pg_advisory_xact_lock(hashtextextended('relua.schema', 0))", 0, NULL);
  PQclear(res);
  v = read_version(L, p);                                  /* again, under the lock */
  if (v < 0) goto failed;
  for (; v < SCHEMA_VERSION; v++) {
    res = exec(L, p, steps[v], 0, NULL);
    if (res == NULL) goto failed;
    PQclear(res);
    if (v > 0) {
      char ver[32];
      const char *vals[1];
      snprintf(ver, sizeof ver, "%ld", v + 1);
      vals[0] = ver;
      res = exec(L, p, "update relua.meta set value = $1 where key = 'schema_version'", 1, vals);
      if (res == NULL) goto failed;
      PQclear(res);
    }
  }
  res = exec(L, p, "commit", 0, NULL);
  if (res == NULL) goto failed;
  PQclear(res);
  return found;
failed:                                                    /* [msg] */
  if (!p->lost) PQclear(PQexec(p->conn, "rollback"));
  if (p->lost) { lua_pop(L, 1); return raise_lost(L, self, p, NULL); }
  return relua_raise(L, 1, "store", "store %s: cannot create relua's schema: %s",
                     where(L, self), lua_tostring(L, -1));
}

/* ---------------------------------------------------------------- open and close */

static void pg_close_conn(Pg *p) {
  if (p->conn != NULL) {
    PQfinish(p->conn);      /* the session ends: its advisory locks are released */
    p->conn = NULL;
  }
}

static int pg_close(lua_State *L) {
  pg_close_conn((Pg *)luaL_checkudata(L, 1, PG_MT));
  return 0;
}

/*
** Connects (libpq: the URL, then the PG* variables for what it leaves out) and makes sure
** the schema is there (created on first use; migrate != 0 also upgrades an older one).
** Pushes the connection and returns the schema version found, or pushes nil, message,
** code and returns -1.
*/
static long open_store(lua_State *L, const char *url, int migrate) {
  const char *kw[12], *val[12];
  int n = 0, self;
  Pg *p = (Pg *)lua_newuserdatauv(L, sizeof(Pg), 1);      /* box first: [p] */
  self = lua_gettop(L);
  p->conn = NULL;
  p->lost = 0;
  luaL_setmetatable(L, PG_MT);
  push_display(L, url);
  lua_setiuservalue(L, self, 1);
  add_default(kw, val, &n, "application_name", "PGAPPNAME", "relua");
  add_default(kw, val, &n, "connect_timeout", "PGCONNECT_TIMEOUT", "10");
  /* a dead peer (a lost VM, a cut network) is noticed within about 15 s, not hours */
  add_default(kw, val, &n, "keepalives_idle", NULL, "5");
  add_default(kw, val, &n, "keepalives_interval", NULL, "2");
  add_default(kw, val, &n, "keepalives_count", NULL, "3");
  add_default(kw, val, &n, "tcp_user_timeout", NULL, "15000");
  kw[n] = "dbname";            /* last: what the URL says overrides the defaults above */
  val[n] = url;
  n++;
  kw[n] = val[n] = NULL;
  p->conn = PQconnectdbParams(kw, val, 1);
  if (p->conn == NULL) luaL_error(L, "store: out of memory");
  if (PQstatus(p->conn) != CONNECTION_OK) {
    const char *why = push_pqerror(L, p->conn, NULL);    /* [p, why] */
    lua_pushfstring(L, "cannot connect to the store %s: %s", where(L, self), why);
    pg_close_conn(p);
    lua_replace(L, self + 1);                              /* [p, msg] */
    lua_pushnil(L);
    lua_replace(L, self);                                  /* [nil, msg] */
    lua_pushliteral(L, "store-connect");                   /* [nil, msg, code] */
    return -1;
  }
  return ensure_schema(L, self, p, migrate);
}

/* pg.open(url) -> conn | nil, message, code */
static int l_open(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  if (open_store(L, url, 0) < 0) return 3;
  lua_settop(L, 2);
  return 1;
}

/*
** pg.migrate(url) -> the schema version found, the version now | nil, message, code
** Creates the schema, or upgrades an older one to this relua's.
*/
static int l_migrate(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  long found;
  lua_settop(L, 1);
  found = open_store(L, url, 1);
  if (found < 0) return 3;
  pg_close_conn((Pg *)lua_touserdata(L, 2));
  lua_pushinteger(L, found);
  lua_pushinteger(L, SCHEMA_VERSION);
  return 2;
}

/* ---------------------------------------------------------------- the ticket lock */

#define TICKET_KEY "hashtextextended('relua.ticket:' || $1, 0)"

/*
** conn:lock(ticket, holder) -> true | nil, message, "locked", holder
** Takes the ticket's advisory lock without waiting and records holder (the runner's
** "pid=N host=H since=T") for whoever is refused.
*/
static int pg_lock(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *vals[2];
  PGresult *res;
  int tries;
  vals[0] = luaL_checkstring(L, 2);
  vals[1] = luaL_checkstring(L, 3);
  /* Refused, the live holder is named. Its row is written in the statement that took the
     lock, so for a moment the lock can be held with the row not yet visible; and a holder
     whose session is ending (its client killed) lets go a moment later: try again,
     briefly, until one of the two is seen. */
  for (tries = 0; tries < 100; tries++) {
    res = exec_or_raise(L, 1, p, NULL,
      "with l as (select pg_try_advisory_lock(" TICKET_KEY ") as ok) "
      "insert into relua.locks as k (ticket, holder, pid) "
      "select $1, $2, pg_backend_pid() from l where ok "
      "on conflict (ticket) do update set holder = excluded.holder, pid = excluded.pid, "
      "since = now() returning pid", 2, vals);
    if (PQntuples(res) == 1) {
      PQclear(res);
      lua_pushboolean(L, 1);
      return 1;
    }
    PQclear(res);
    res = exec_or_raise(L, 1, p, NULL,
      "select k.holder from relua.locks k where k.ticket = $1 and exists ("
      "select 1 from pg_locks a where a.locktype = 'advisory' and a.granted "
      "and a.pid = k.pid and a.objsubid = 1 "
      "and ((a.classid::bigint << 32) | a.objid::bigint) = " TICKET_KEY ")", 1, vals);
    if (PQntuples(res) == 1) {
      lua_pushstring(L, PQgetvalue(res, 0, 0));
      PQclear(res);
      break;
    }
    PQclear(res);
    usleep(10000);
  }
  if (tries == 100) lua_pushliteral(L, "holder not recorded");
  lua_pushnil(L);
  lua_pushfstring(L, "ticket %s is locked by another run (%s)", vals[0], lua_tostring(L, -2));
  lua_pushliteral(L, "locked");
  lua_pushvalue(L, -4);
  return 4;
}

/* conn:unlock(ticket): releases the ticket's lock (closing the connection does too). */
static int pg_unlock(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *vals[1];
  PGresult *res;
  vals[0] = luaL_checkstring(L, 2);
  if (lost(p)) return 0;                 /* the session, and so its lock, is gone */
  res = exec(L, p, "select pg_advisory_unlock(" TICKET_KEY ")", 1, vals);
  if (res != NULL) PQclear(res);
  return 0;
}

/* conn:alive() -> false once the connection (and with it the session's locks) is gone. */
static int pg_alive(lua_State *L) {
  Pg *p = check_pg(L, 1);
  lua_pushboolean(L, !lost(p));
  return 1;
}

/* conn:check(ticket): raises "store-lost" when the connection is gone. */
static int pg_check(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *ticket = luaL_optstring(L, 2, NULL);
  if (lost(p)) raise_lost(L, 1, p, ticket);
  return 0;
}

/* ---------------------------------------------------------------- state and events */

/* conn:get(ticket) -> state text | nil, version (0 for a ticket never saved) */
static int pg_get(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *vals[1];
  PGresult *res;
  vals[0] = luaL_checkstring(L, 2);
  res = exec_or_raise(L, 1, p, vals[0],
    "select state, version from relua.tickets where ticket = $1", 1, vals);
  if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
    lua_pushnil(L);
    lua_pushinteger(L, PQntuples(res) == 0 ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10));
  } else {
    lua_pushlstring(L, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    lua_pushinteger(L, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
  }
  PQclear(res);
  return 2;
}

/*
** conn:put(ticket, state, expected [, line]) -> new version | nil, message, "conflict"
** Replaces the state when its version is still `expected` (0: never saved), and appends
** line (when given) as the event that describes the change, in one statement: one
** transaction. The ticket row is locked by the update, so the event's seq follows the
** commit order.
*/
static int pg_put(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *vals[4];
  char ver[32];
  lua_Integer expected;
  PGresult *res;
  vals[0] = luaL_checkstring(L, 2);
  vals[1] = luaL_checkstring(L, 3);
  expected = luaL_checkinteger(L, 4);
  vals[2] = luaL_optstring(L, 5, NULL);
  snprintf(ver, sizeof ver, "%lld", (long long)expected);
  vals[3] = ver;
  if (expected == 0)
    res = exec_or_raise(L, 1, p, vals[0],
      "with t as (insert into relua.tickets as t (ticket, version, state, nevents) "
      "values ($1, 1, $2, case when $3::text is null then 0 else 1 end) "
      "on conflict (ticket) do update set version = t.version + 1, state = excluded.state, "
      "nevents = t.nevents + excluded.nevents, updated = now() "
      "where t.version = $4::bigint returning version, nevents), "
      "e as (insert into relua.events (ticket, seq, line) "
      "select $1, nevents, $3 from t where $3::text is not null) "
      "select version from t", 4, vals);
  else
    res = exec_or_raise(L, 1, p, vals[0],
      "with t as (update relua.tickets set version = version + 1, state = $2, "
      "nevents = nevents + case when $3::text is null then 0 else 1 end, updated = now() "
      "where ticket = $1 and version = $4::bigint returning version, nevents), "
      "e as (insert into relua.events (ticket, seq, line) "
      "select $1, nevents, $3 from t where $3::text is not null) "
      "select version from t", 4, vals);
  if (PQntuples(res) == 1) {
    lua_pushinteger(L, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    PQclear(res);
    return 1;
  }
  PQclear(res);
  lua_pushnil(L);
  lua_pushfstring(L, "the state of ticket %s changed since this run read it (version %s): "
                  "a stale writer cannot overwrite a newer state", vals[0], ver);
  lua_pushliteral(L, "conflict");
  return 3;
}

/* conn:append(ticket, line) -> seq: one event, durable when the call returns. */
static int pg_append(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *vals[2];
  PGresult *res;
  vals[0] = luaL_checkstring(L, 2);
  vals[1] = luaL_checkstring(L, 3);
  res = exec_or_raise(L, 1, p, vals[0],
    "with t as (insert into relua.tickets as t (ticket, nevents) values ($1, 1) "
    "on conflict (ticket) do update set nevents = t.nevents + 1 returning nevents) "
    "insert into relua.events (ticket, seq, line) select $1, nevents, $2 from t "
    "returning seq", 2, vals);
  lua_pushinteger(L, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
  PQclear(res);
  return 1;
}

/* Pushes column 0 of every row as an array. */
static void push_column(lua_State *L, PGresult *res) {
  int i, n = PQntuples(res);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
    lua_rawseti(L, -2, i + 1);
  }
}

/* Runs a one-parameter query (param may be NULL) and pushes its first column. */
static int query_column(lua_State *L, const char *sql, const char *param) {
  Pg *p = check_pg(L, 1);
  const char *vals[1];
  PGresult *res;
  vals[0] = param;
  res = exec_or_raise(L, 1, p, NULL, sql, param ? 1 : 0, vals);
  push_column(L, res);         /* raises only when memory runs out */
  PQclear(res);
  return 1;
}

/* conn:events(ticket) -> {line, ...} in order */
static int pg_events(lua_State *L) {
  return query_column(L, "select line from relua.events where ticket = $1 order by seq",
                      luaL_checkstring(L, 2));
}

/* conn:list() -> {ticket, ...}: every ticket with a state, sorted */
static int pg_list(lua_State *L) {
  return query_column(L, "select ticket from relua.tickets where state is not null "
                         "order by ticket collate \"C\"", NULL);
}

/* ---------------------------------------------------------------- lane control records */

#define LANE_KEY "hashtextextended('relua.lane:' || $1, 0)"

/* conn:controls(lane) -> {record, ...} in order */
static int pg_controls(lua_State *L) {
  return query_column(L, "select record from relua.controls where lane = $1 order by seq",
                      luaL_checkstring(L, 2));
}

/*
** conn:control(lane, decide) -> record | nil
** Under the lane's lock (a transaction-level advisory lock: other deciders on this lane
** wait, others do not), calls decide(records) with the lane's current records; when it
** returns a string, appends it. An error in decide rolls back and is raised again.
*/
static int pg_control(lua_State *L) {
  Pg *p = check_pg(L, 1);
  const char *vals[2];
  PGresult *res;
  int status;
  vals[0] = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  res = exec_or_raise(L, 1, p, NULL, "begin", 0, NULL);
  PQclear(res);
  res = exec(L, p, "select pg_advisory_xact_lock(" LANE_KEY ")", 1, vals);
  if (res == NULL) goto failed;
  PQclear(res);
  res = exec(L, p, "select record from relua.controls where lane = $1 order by seq", 1, vals);
  if (res == NULL) goto failed;
  lua_pushvalue(L, 3);                                     /* [.., decide] */
  push_column(L, res);                                     /* [.., decide, records] */
  PQclear(res);
  status = lua_pcall(L, 1, 1, 0);                          /* [.., record | err] */
  if (status != LUA_OK) {
    if (!lost(p)) PQclear(PQexec(p->conn, "rollback"));
    return lua_error(L);
  }
  if (!lua_isstring(L, -1)) {
    res = exec(L, p, "rollback", 0, NULL);
    if (res != NULL) PQclear(res);
    lua_pushnil(L);
    return 1;
  }
  vals[1] = lua_tostring(L, -1);
  res = exec(L, p, "insert into relua.controls (lane, seq, record) select $1, "
                   "coalesce(max(seq), 0) + 1, $2 from relua.controls where lane = $1", 2, vals);
  if (res == NULL) goto failed;
  PQclear(res);
  res = exec(L, p, "commit", 0, NULL);
  if (res == NULL) goto failed;
  PQclear(res);
  return 1;                                                /* the record */
failed:                                                    /* [.., msg] */
  if (!p->lost) PQclear(PQexec(p->conn, "rollback"));
  if (p->lost) { lua_pop(L, 1); return raise_lost(L, 1, p, NULL); }
  return relua_raise(L, 1, "store", "store %s: lane %s: %s", where(L, 1), vals[0],
                     lua_tostring(L, -1));
}

/* ---------------------------------------------------------------- schema commands */

/* conn:schema() -> the schema version in the database, and the one this relua knows */
static int pg_schema(lua_State *L) {
  Pg *p = check_pg(L, 1);
  lua_pushinteger(L, schema_version(L, 1, p));
  lua_pushinteger(L, SCHEMA_VERSION);
  return 2;
}

/* conn:where() -> the store's URL without its password */
static int pg_where(lua_State *L) {
  check_pg(L, 1);
  lua_pushstring(L, where(L, 1));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"migrate", l_migrate},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"lock", pg_lock},
  {"unlock", pg_unlock},
  {"alive", pg_alive},
  {"check", pg_check},
  {"get", pg_get},
  {"put", pg_put},
  {"append", pg_append},
  {"events", pg_events},
  {"list", pg_list},
  {"controls", pg_controls},
  {"control", pg_control},
  {"schema", pg_schema},
  {"where", pg_where},
  {"close", pg_close},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", pg_close},
  {"__close", pg_close},
  {"__index", NULL},
  {NULL, NULL}
};

int luaopen_relua_store_pg(lua_State *L) {
  luaL_newmetatable(L, PG_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
