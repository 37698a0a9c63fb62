/*
** ledger.h: private to the enforcing core (host/ledger*.c, host/store*.c). What each file
** does:
**   ledger.c        the Ledger handle (relua.core.ledger): open, the state accessors, close
**   ledger_state.c  the state codec and its validation: every read and every write
**   ledger_log.c    the logfmt writer of audit events
**   ledger_run.c    the phase runner: where a run starts, what runs, what is recorded
**   ledger_crash.c  test-only crash points (RELUA_TEST_CRASH_AT)
**   store.c         relua.core.store: opening a store, the Lua face of the interface
**   store_folder.c  the folder backend
**   lock.c          the one lock implementation (flock + holder record)
*/
#ifndef RELUA_LEDGER_H
#define RELUA_LEDGER_H

#include <stdint.h>

#include "store.h"

#define LEDGER_MT "relua.core.ledger.Ledger"
#define STORE_MT  "relua.core.store.Store"
#define SCHEMA 1

/* A Store userdata: the backend's store, NULL once closed. */
typedef struct StoreBox {
  relua_Store *s;
} StoreBox;

/* Uservalues of a Ledger. */
#define UV_STATE 1   /* the state table (the core's own; never handed out), or nil */
#define UV_INFO  2   /* {ticket=, out=, store=} (copies are handed out) */
#define UV_STORE 3   /* the Store userdata: kept alive while the ledger is */

typedef struct Ledger {
  relua_Store *s;         /* borrowed from the Store in UV_STORE */
  relua_StoreLock *lk;    /* NULL once closed */
  int64_t version;        /* of the stored state (0: none yet) */
  int interrupted;        /* a Ctrl-C arrived while recording: raise it once recorded */
} Ledger;

/* ledger.c */
Ledger *ledger_check(lua_State *L, int idx);
const char *ledger_info(lua_State *L, int idx, const char *field);
void ledger_push_now(lua_State *L);
double ledger_monotonic(void);
void ledger_raise_deferred(lua_State *L, Ledger *lg);
void ledger_deep_copy(lua_State *L, int idx);   /* pushes a copy of the value at idx */
int ledger_is_interrupt(lua_State *L, int idx);
/* Pushes the value a store status gives Lua: nil, message, code (3 values); the message
   (or holder record) is on top of the stack and is consumed. */
int ledger_push_failure(lua_State *L, int status);

/* ledger_state.c */
/* Decodes a state document (text at idx) and checks its shape: pushes the table and
   returns 1, or pushes nil, message, "corrupt" and returns 3. where: for messages. */
int ledger_decode_state(lua_State *L, int idx, const char *where, const char *ticket);
/* Reads a ticket's state through the store: 1 (table pushed, *version set) or 3
   (nil, message, code: "ENOENT" when none). */
int ledger_read_state(lua_State *L, relua_Store *s, const char *ticket, int64_t *version);
/* NULL when the table at idx is a sound state of ticket; else what is wrong (pushed). */
const char *ledger_check_shape(lua_State *L, int idx, const char *ticket);
/* Saves the ledger's state (UV_STATE), then the event line at eidx (0: none). -1 with the
   message pushed when it cannot be encoded or is unsound (nothing written); raises a
   structured error when the store fails. */
int ledger_try_save(lua_State *L, int self, int eidx);
/* ledger_try_save, but a store failure is returned (its RELUA_STORE_* status, > 0, with
   the message pushed) rather than raised. */
int ledger_store_state(lua_State *L, int self, int eidx);
/* Raises the structured error of store status st, whose message is on top. */
void ledger_raise_store(lua_State *L, int self, int st);
void ledger_save(lua_State *L, int self, int eidx);
/* Decodes the JSON text at idx with the host's strict decoder (relua_json_decode): 1 with
   the value pushed, or 0 with the message pushed ("json.decode: NAME: ... at line L,
   column C"). */
int ledger_json_decode(lua_State *L, int idx, const char *name);
/* Pushes the check of the phases array at idx ("fnv1a64:HEX"); raises when it cannot be
   encoded. */
const char *ledger_push_phases_digest(lua_State *L, int idx);
/* relua.core.ledger.read(path [, ticket]) */
int ledger_l_read(lua_State *L);

/* ledger_log.c */
/* Pushes one event line: timestamp, ticket, phase, event, rc, the other fields of the
   table at fidx (0: none) sorted, msg last; masked; ending in '\n'. */
void ledger_push_event(lua_State *L, const char *ticket, const char *phase, const char *event,
                       int fidx);
/* Appends an event to the ledger's ticket (raises when it cannot). */
void ledger_log(lua_State *L, int self, const char *phase, const char *event, int fidx);
/* ledger_log with sync 0 for an event that records no change (see relua_StoreOps.append). */
void ledger_log_sync(lua_State *L, int self, const char *phase, const char *event, int fidx,
                     int sync);

/* ledger_run.c */
int ledger_run(lua_State *L);     /* lg:run(plan, r [, mode [, from]]) */
int ledger_start(lua_State *L);   /* lg:start([from]) */
int ledger_settle(lua_State *L);  /* lg:settle(phase, outcome) */

/* ledger_crash.c: relua_store_crash, relua_store_crash_due (store.h) and */
int ledger_l_crash(lua_State *L);  /* lg:crash(point) */

/* ledger.c: opens the ticket's ledger in the Store at index store (see l_open). */
int ledger_open_in(lua_State *L, int store, const char *ticket);

/* store.c */
void store_metatable(lua_State *L);
relua_Store *store_check(lua_State *L, int idx);
/* Opens the store of url (NULL: $RELUA_STORE, else the default folder) as a pushed Store
   userdata: 1, or nil, message, code: 3. home: see relua_StoreBackend.open (NULL). */
int store_open(lua_State *L, const char *url, const char *home);
/* Pushes a Store of the folder backend whose tickets are in dir (ledger.open(dir, ...)). */
int store_open_folder_dir(lua_State *L, const char *dir);
/* The folder backend (store_folder.c) with an explicit releases folder. */
int relua_store_folder_open_dirs(lua_State *L, const char *releases, const char *lanes,
                                 relua_Store **out);

#endif
