/*
** store.h: the storage interface of the enforcing core.
**
** The ledger (a ticket's state document, its audit events, its lock) and a lane's control
** records live in a STORE. A backend implements the few operations below; everything
** that is policy (what a state may contain, how events are worded, when a phase may run)
** is the core's (host/ledger*.c, host/store.c) and is the same on every backend.
**
** Backends: "folder" (host/store_folder.c, the default: the files under .relua/, unchanged
** on disk) and "postgres" (host/store_pg.c, a lazy module). store.c picks one from the
** URL: "postgres://..." or "postgresql://..." -> postgres; "folder:PATH", "file://PATH",
** a plain PATH, or nothing (RELUA_HOME, else .relua) -> folder.
**
** Conventions, for every operation taking a lua_State:
**  - It returns a status (RELUA_STORE_*). On RELUA_STORE_OK it pushes exactly what the
**    operation documents; on any other status it pushes exactly one value: the message (a
**    string naming the thing, without secrets), except RELUA_STORE_LOCKED which pushes the
**    holder record of whoever holds the lock (see below) instead.
**  - It may raise only for memory errors; it frees its own resources before pushing.
**  - Names (tickets, lanes) are already validated by the core: 1-64 characters of
**    A-Z a-z 0-9 . _ - and not "." or "..".
**  - Documents and records are opaque bytes to a backend: the core encodes and validates
**    them (store.c); a backend stores and returns them byte for byte.
**
** The holder record of a lock is one line of text "pid=N host=H since=ISO8601" (the folder
** backend's lock file holds exactly that; other backends may append more " key=value"
** fields). relua_store_push_holder parses it: the one parser of lock records.
**
** The Lua face (module relua.core.store; the only way Lua reaches a store):
**   store.open([url [, home]]) -> Store | nil, message, code
**       url: as above; nil: $RELUA_STORE, else the folder $RELUA_HOME (else .relua).
**       home: this runner's relua home, where a store that keeps no files here (postgres)
**       puts the phase outputs (HOME/releases/TICKET); nil: $RELUA_HOME, else .relua.
**   store.url() -> the URL open() would use with no argument (nil for the default folder)
**   Store:describe() -> "folder .relua" / "postgres postgres://user@host/db" (no secret)
**   Store:tickets() -> {"1234", ...}                  sorted
**   Store:read(ticket) -> state, version | nil, message, code ("ENOENT", "corrupt", ...)
**       state is a validated COPY (the same shape check as every write).
**   Store:events(ticket) -> text of the audit log ("" when none) | nil, message, code
**   Store:holder(ticket) -> {pid=, host=, since=} while a run holds it, else nil
**   Store:ledger(ticket) -> Ledger (locked) | nil, message, code [, holder]
**       (relua.core.ledger's methods; ledger.open(dir, ticket) is the folder at dir)
**   Store:lanes() -> {"main", ...}
**   Store:controls(lane) -> {record, ...}   oldest first; copies of JSON objects
**   Store:control_append(lane, decide) -> record | nil  (| nil, message, code)
**       Under the lane's lock: decide(records) gets copies of the current records and
**       returns a table (appended, as one JSON object) or nil (nothing appended). An error
**       raised by decide is raised again after the lock is released.
**   Store:close()   (also __gc, __close)
*/
#ifndef RELUA_STORE_H
#define RELUA_STORE_H

#include <stdint.h>

#include "relua.h"

enum {
  RELUA_STORE_OK = 0,
  RELUA_STORE_NOTFOUND,   /* no such ticket (or lane) */
  RELUA_STORE_LOCKED,     /* held by another run: the holder record is pushed */
  RELUA_STORE_CONFLICT,   /* compare-and-swap lost: the stored version is not the expected one */
  RELUA_STORE_CORRUPT,    /* what is stored cannot be trusted: refused, never overwritten */
  RELUA_STORE_LOST,       /* the lock was lost (e.g. the database connection died): stop */
  RELUA_STORE_ERROR       /* anything else (I/O, connection, permission) */
};

typedef struct relua_Store relua_Store;
typedef struct relua_StoreLock relua_StoreLock;   /* a held ticket lock; backend-defined */

/*
** Called by control_append with the lane's records on top of the stack (an array table of
** strings, oldest first; each a JSON object as appended). It must pop that table and
** push either a string (the record to append) or nil (append nothing), returning
** RELUA_STORE_OK; or push a message and return another status (nothing is appended). It
** runs Lua under lua_pcall and never raises.
*/
typedef int (*relua_StoreDecide)(lua_State *L, void *ud);

typedef struct relua_StoreOps {
  const char *scheme;   /* "folder", "postgres" */

  /* Frees everything the store holds (locks still held are released). Safe on any store
     returned by open; never raises. */
  void (*close)(relua_Store *s);

  /* Pushes a one-line description for people ("folder /srv/x/.relua",
     "postgres postgres://relua@db:5432/rel"): no password, no secret. Always OK. */
  int (*describe)(relua_Store *s, lua_State *L);

  /* Pushes where a ticket's state is, for messages ("/srv/x/.relua/releases/5.json",
     "ticket 5 in postgres://relua@db/rel"): no secret. Always OK. */
  int (*where)(relua_Store *s, lua_State *L, const char *ticket);

  /* Pushes the local folder where a ticket's phase outputs go (PHASE.out files); the
     folder backend: RELEASES/TICKET. Created by the core when needed. Always OK. */
  int (*outdir)(relua_Store *s, lua_State *L, const char *ticket);

  /* ---- the per-ticket exclusive lock */

  /* Takes the ticket's lock without waiting, recording `holder` (a holder record) for
     whoever is refused. OK: *lk is set, nothing pushed. LOCKED: the current holder's
     record is pushed. The lock dies with the process (or its connection). */
  int (*lock)(relua_Store *s, lua_State *L, const char *ticket, const char *holder,
              relua_StoreLock **lk);
  /* Releases a lock taken by lock. Never fails, never raises; lk may be NULL. */
  void (*unlock)(relua_Store *s, relua_StoreLock *lk);
  /* OK: pushes the holder record (a string) when a run holds the ticket, else nil. */
  int (*holder)(relua_Store *s, lua_State *L, const char *ticket);

  /* ---- the state document, replaced with compare-and-swap */

  /* OK: pushes the document (a string) and sets *version (>= 1). NOTFOUND when the ticket
     has no state. CORRUPT when what is stored is not a readable document (e.g. not a
     regular file). */
  int (*read)(relua_Store *s, lua_State *L, const char *ticket, int64_t *version);

  /* Replaces the document if the stored version is still `expect` (0: the ticket must have
     no state yet), then appends `event` (one or more complete lines; NULL for none) to the
     ticket's events: in one transaction where the backend has them (postgres), else the
     state first, durably, then the event (folder). OK: sets *version to the new version,
     pushes nothing. CONFLICT: a newer state is stored; nothing was written. The caller
     holds the ticket's lock (lk), which a backend may check (LOST when gone). */
  int (*replace)(relua_Store *s, lua_State *L, relua_StoreLock *lk, const char *ticket,
                 const char *doc, size_t len, int64_t expect, const char *event,
                 size_t elen, int64_t *version);

  /* ---- the audit events, append-only */

  /* Appends data (one or more complete lines, each ending in '\n'), whole and durable
     before it returns, after every event appended before it. lk: the caller's lock, or
     NULL when copying between stores under the target's lock taken by the caller.
     sync 0: an event that records no change (a re-run with nothing to do) is written
     whole but not waited for (the folder store does not fdatasync it; the next durable
     append makes it durable too); a backend may treat it as durable.
     postgres: every event is committed (visible, in order) before it returns, and, sync or
     not, with an asynchronous commit: durable on the server a moment later, and at the
     latest with the next replace, whose synchronous commit flushes the log up to it (see
     store_pg.c; doc/store.md). */
  int (*append)(relua_Store *s, lua_State *L, relua_StoreLock *lk, const char *ticket,
                const char *data, size_t len, int sync);
  /* OK: pushes every event of the ticket as one string of lines, in order ("" when none). */
  int (*events)(relua_Store *s, lua_State *L, const char *ticket);

  /* ---- listing */

  /* OK: pushes an array table of the names of every ticket with a state, sorted. */
  int (*tickets)(relua_Store *s, lua_State *L);

  /* ---- a lane's control records (delivery controls) */

  /* OK: pushes an array table of the lane's records (strings, oldest first; empty table
     when none). */
  int (*controls)(relua_Store *s, lua_State *L, const char *lane);
  /* Under the lane's exclusive lock (waiting for it): reads the lane's records, calls
     decide (see relua_StoreDecide), appends the record it returns durably, releases the
     lock. OK: pushes what decide returned (the appended record, or nil). */
  int (*control_append)(relua_Store *s, lua_State *L, const char *lane,
                        relua_StoreDecide decide, void *ud);
  /* OK: pushes an array table of the names of every lane with records, sorted. */
  int (*lanes)(relua_Store *s, lua_State *L);
} relua_StoreOps;

/* Every backend's store begins with this (a backend allocates a larger struct). */
struct relua_Store {
  const relua_StoreOps *ops;
};

/*
** A backend: opens the store at url (the whole URL as the user gave it; for the folder,
** the folder path already resolved). home: the runner's relua home for the phase outputs
** of a store that keeps no local files (NULL: $RELUA_HOME, else .relua; the folder store
** keeps them beside its tickets). OK with *out set (nothing pushed), or a status with the
** message pushed (*out untouched).
*/
typedef struct relua_StoreBackend {
  const char *scheme;
  int (*open)(lua_State *L, const char *url, const char *home, relua_Store **out);
  /* A store with a versioned schema (postgres; NULL for the folder): creates it, or
     upgrades an older one to this relua's (`relua store migrate`; open() creates it on
     first use but never upgrades). OK: sets *found (the version before, 0 for none) and
     *now, pushes nothing. */
  int (*migrate)(lua_State *L, const char *url, int64_t *found, int64_t *now);
} relua_StoreBackend;

/* The folder backend (host/store_folder.c). home: the relua home (tickets in
   HOME/releases, lanes in HOME/lanes). */
extern const relua_StoreBackend relua_store_folder;

/*
** The postgres backend lives in a lazy module: host/store_pg.c defines
** luaopen_relua_core_store_pg, which pushes a light userdata: its
** const relua_StoreBackend *. store.c loads it with relua_open_owned (never through the
** global require or package.preload, which Lua code can replace).
*/

/*
** Runs the host's own opener of a C module by its module name ("relua.core.store_pg"),
** lazy or linked, as require would but without package.loaded, package.preload or any
** Lua a script could replace (store.c, through the loader main.c keeps in the registry
** as "relua.owned"). OK: the opener's first result is pushed. Else a
** message is pushed and RELUA_STORE_ERROR returned.
*/
int relua_open_owned(lua_State *L, const char *module);

/* ---- shared by the core and the backends (host/store.c) */

/* Parses a holder record into a table {pid=integer, host=, since=, ...} (pushed); an
   unparsable or empty record gives an empty table. The one parser of lock records. */
void relua_store_push_holder(lua_State *L, const char *record);
/* Formats this process's holder record "pid=N host=H since=T" into buf. */
void relua_store_holder_record(char *buf, size_t n);
/* The code of a status, for Lua's nil, message, code: "ENOENT", "locked", "conflict",
   "corrupt", "lost", "store". */
const char *relua_store_code(int status);
/* 1 when name is a valid ticket or lane name. */
int relua_store_valid_name(const char *s, size_t n);

/*
** Test-only crash points (RELUA_TEST_CRASH_AT=POINT[:N[:INT]], see doc/recipes.md): the
** process kills itself (SIGKILL; SIGINT with ":INT") the N-th time it reaches POINT.
** replace calls, in this order: relua_store_crash_due(L, "state-write") just before the
** state is written (when due, the folder backend leaves a half-written temp file and
** kills itself), relua_store_crash(L, "state-saved") once the state is durable, and
** relua_store_crash(L, "log-event") before the event is appended (append: the core calls
** it). A backend that writes state and event in one transaction calls all three before
** its commit (so a crash there loses both, never one).
*/
int relua_store_crash_due(lua_State *L, const char *point);   /* the signal, or 0 */
void relua_store_crash(lua_State *L, const char *point);

#endif
