/*
** ledger.c: what the release engine ENFORCES, in C so that no recipe can bypass it
** (module relua.core.ledger; the policy around it is lib/relua/release.lua). A Ledger is
** a ticket opened in a store (store.h) under the ticket's lock:
**  - the lock is the store's: one run per ticket, naming its holder, gone with it.
**  - the state document is read and written only through ledger_state.c's shape check,
**    replaced with compare-and-swap on its version; readers get copies, never the core's
**    own tables; lg:save may reshape the phases but never change what the runner
**    recorded, and a ticket stays with its recipe.
**  - events are logfmt lines (ledger_log.c) appended through the store.
**  - the phase runner (ledger_run.c) decides where a run starts and what runs.
** Test-only crash points are in ledger_crash.c.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"

int ledger_l_start(lua_State *L);
static void ledger_metatable(lua_State *L);

/* ---------------------------------------------------------------- helpers */

void ledger_push_now(lua_State *L) {
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

double ledger_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ledger_is_interrupt(lua_State *L, int idx) {
  int yes = 0;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "code");
    yes = lua_type(L, -1) == LUA_TSTRING && (strcmp(lua_tostring(L, -1), "interrupted") == 0 ||
                                             strcmp(lua_tostring(L, -1), "lost") == 0);
    lua_pop(L, 1);
  }
  return yes;
}

int ledger_push_failure(lua_State *L, int status) {
  lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushstring(L, relua_store_code(status));
  return 3;
}

static void copy_value(lua_State *L, int idx, int depth) {
  if (!lua_istable(L, idx)) {
    lua_pushvalue(L, idx);
    return;
  }
  if (depth > 200) luaL_error(L, "ledger: a value nested more than 200 deep");
  luaL_checkstack(L, 6, "ledger: copy");
  lua_newtable(L);                                         /* [copy] */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {                          /* [copy, k, v] */
    copy_value(L, lua_gettop(L), depth + 1);               /* [copy, k, v, v'] */
    lua_remove(L, -2);
    lua_pushvalue(L, -2);
    lua_insert(L, -2);                                     /* [copy, k, k, v'] */
    lua_rawset(L, -4);
  }
  if (lua_getmetatable(L, idx)) lua_setmetatable(L, -2);   /* keeps json.array marks */
}

void ledger_deep_copy(lua_State *L, int idx) {
  copy_value(L, lua_absindex(L, idx), 0);
}

/* ---------------------------------------------------------------- the handle */

Ledger *ledger_check(lua_State *L, int idx) {
  Ledger *lg = (Ledger *)luaL_checkudata(L, idx, LEDGER_MT);
  if (lg->lk == NULL) luaL_error(L, "ledger: the ticket's ledger is closed");
  return lg;
}

const char *ledger_info(lua_State *L, int idx, const char *field) {
  const char *s;
  lua_getiuservalue(L, idx, UV_INFO);
  lua_getfield(L, -1, field);
  s = lua_tostring(L, -1);   /* the info table keeps it alive */
  lua_pop(L, 2);
  return s;
}

void ledger_raise_deferred(lua_State *L, Ledger *lg) {
  if (lg->interrupted) {
    lg->interrupted = 0;
    relua_raise_interrupt(L);
  }
}

static void close_ledger(Ledger *lg) {
  if (lg->lk != NULL) {
    lg->s->ops->unlock(lg->s, lg->lk);
    lg->lk = NULL;
  }
}

/* One close for close, __gc and __close: releases the lock. Safe twice. */
static int lg_close(lua_State *L) {
  close_ledger((Ledger *)luaL_checkudata(L, 1, LEDGER_MT));
  return 0;
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

/* ---------------------------------------------------------------- opening */

int ledger_open_in(lua_State *L, int store, const char *ticket) {
  relua_Store *s = store_check(L, store);
  Ledger *lg;
  char record[512];
  int self, st, n;
  store = lua_absindex(L, store);
  ledger_metatable(L);
  lg = (Ledger *)lua_newuserdatauv(L, sizeof(Ledger), 3);  /* box first: [lg] */
  self = lua_gettop(L);
  lg->s = s;
  lg->lk = NULL;
  lg->version = 0;
  lg->interrupted = 0;
  luaL_setmetatable(L, LEDGER_MT);
  lua_pushvalue(L, store);
  lua_setiuservalue(L, self, UV_STORE);
  lua_createtable(L, 0, 3);                                /* [lg, info] */
  lua_pushstring(L, ticket);
  lua_setfield(L, -2, "ticket");
  s->ops->outdir(s, L, ticket);
  lua_setfield(L, -2, "out");
  s->ops->describe(s, L);
  lua_setfield(L, -2, "store");
  lua_setiuservalue(L, self, UV_INFO);                     /* [lg] */
  relua_store_holder_record(record, sizeof record);
  st = s->ops->lock(s, L, ticket, record, &lg->lk);
  if (st == RELUA_STORE_LOCKED) {                          /* [lg, record] */
    int holder;
    relua_store_push_holder(L, lua_tostring(L, -1));       /* [lg, record, holder] */
    holder = lua_gettop(L);
    lua_pushnil(L);
    lua_pushfstring(L, "ticket %s is locked by another run (%s)", ticket,
                    push_holder_text(L, holder));
    lua_remove(L, -2);                                     /* [.., holder, nil, msg] */
    lua_pushliteral(L, "locked");
    lua_pushvalue(L, holder);
    return 4;
  }
  if (st != RELUA_STORE_OK) return ledger_push_failure(L, st);
  /* the output folder is created by the runner, when a phase runs (a refused run leaves
     nothing behind) */
  n = ledger_read_state(L, s, ticket, &lg->version);        /* [lg, state | nil msg code] */
  if (n == 1) {
    lua_setiuservalue(L, self, UV_STATE);
    return 1;                                              /* [lg] */
  }
  if (strcmp(lua_tostring(L, -1), "ENOENT") == 0) {
    lua_settop(L, self);                                   /* a new ticket */
    lg->version = 0;
    return 1;
  }
  close_ledger(lg);                                        /* unsound: left as it is */
  return 3;
}

/*
** ledger.open(store_or_dir, ticket) -> ledger | nil, message, code [, holder]
** store_or_dir: a Store (relua.core.store), or the folder of a folder store's tickets.
** Takes the ticket's lock (code "locked" with the holder's record when another run has
** it) and reads the state (code "corrupt" when it is unsound; it is left as it is).
*/
static int l_open(lua_State *L) {
  size_t n;
  const char *ticket = luaL_checklstring(L, 2, &n);
  if (!relua_store_valid_name(ticket, n))
    luaL_argerror(L, 2, "invalid ticket (1-64 characters of A-Z a-z 0-9 . _ -)");
  lua_settop(L, 2);
  if (lua_type(L, 1) == LUA_TSTRING) {
    store_open_folder_dir(L, lua_tostring(L, 1));
    lua_replace(L, 1);
  }
  return ledger_open_in(L, 1, ticket);
}

/* ---------------------------------------------------------------- reading */

/* lg:state() -> a copy of the state, or nil for a new ticket. */
static int lg_state(lua_State *L) {
  ledger_check(L, 1);
  if (lua_getiuservalue(L, 1, UV_STATE) != LUA_TTABLE) return 1;
  ledger_deep_copy(L, -1);
  return 1;
}

/* lg:paths() -> {ticket=, out=, store=} (a copy) */
static int lg_paths(lua_State *L) {
  luaL_checkudata(L, 1, LEDGER_MT);
  lua_getiuservalue(L, 1, UV_INFO);
  ledger_deep_copy(L, -1);
  return 1;
}

/* Pushes state[field] (the core's table), creating it when absent. */
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

/* lg:get(key) -> a copy of state.state[key] */
static int lg_get(lua_State *L) {
  ledger_check(L, 1);
  luaL_checkstring(L, 2);
  state_sub(L, 1, "state");
  lua_getfield(L, -1, lua_tostring(L, 2));
  ledger_deep_copy(L, -1);
  return 1;
}

/* lg:step(key) -> a copy of the recorded entry {phase=, at=, result=}, or nil */
static int lg_step(lua_State *L) {
  ledger_check(L, 1);
  luaL_checkstring(L, 2);
  state_sub(L, 1, "steps");
  lua_getfield(L, -1, lua_tostring(L, 2));
  ledger_deep_copy(L, -1);
  return 1;
}

/* lg:version() -> the version of the stored state (0: none yet) */
static int lg_version(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ledger_check(L, 1)->version);
  return 1;
}

/* ---------------------------------------------------------------- writing */

/*
** Refuses a new state t (at idx) that would rewrite what the runner recorded: a phase
** already recorded keeps its status; a new phase is pending; the recipe's name stays.
*/
static void check_rewrite(lua_State *L, int self, int idx) {
  int cur, curph, newph;
  lua_Integer i, j, n, m;
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, self, UV_STATE) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_pushnil(L);                                        /* a new ticket: all pending */
  }
  cur = lua_gettop(L);
  if (!lua_isnil(L, cur)) {
    lua_getfield(L, cur, "recipe");
    lua_getfield(L, -1, "name");
    lua_getfield(L, idx, "recipe");
    lua_getfield(L, -1, "name");                           /* [.., rec, old, rec', new] */
    if (lua_type(L, -3) == LUA_TSTRING && !lua_rawequal(L, -3, -1)) {
      lua_createtable(L, 0, 4);
      lua_pushfstring(L, "ticket %s belongs to recipe %s, not %s", ledger_info(L, self, "ticket"),
                      lua_tostring(L, -4),
                      lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(a recipe without a name)");
      lua_setfield(L, -2, "message");
      lua_pushliteral(L, "recipe-mismatch");
      lua_setfield(L, -2, "code");
      lua_pushinteger(L, 2);
      lua_setfield(L, -2, "exit");
      lua_pushfstring(L, "a ticket is released by one recipe: use a new ticket for %s, or run %s again",
                      lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : "this recipe", lua_tostring(L, -5));
      lua_setfield(L, -2, "hint");
      relua_error_mark(L);
      lua_error(L);
    }
    lua_pop(L, 4);
  }
  lua_getfield(L, idx, "phases");
  newph = lua_gettop(L);
  if (!lua_istable(L, newph)) { lua_settop(L, cur - 1); return; }   /* the shape check says */
  if (!lua_isnil(L, cur)) lua_getfield(L, cur, "phases");
  else lua_newtable(L);
  curph = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, newph);
  m = (lua_Integer)lua_rawlen(L, curph);
  for (i = 1; i <= n; i++) {
    const char *name, *st, *was = "pending";
    lua_rawgeti(L, newph, i);
    if (!lua_istable(L, -1)) { lua_pop(L, 1); continue; }
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "status");
    name = lua_tostring(L, -2);
    st = lua_tostring(L, -1);
    for (j = 1; name != NULL && j <= m; j++) {
      lua_rawgeti(L, curph, j);
      lua_getfield(L, -1, "name");
      if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0) {
        lua_getfield(L, -2, "status");
        was = lua_tostring(L, -1);                         /* kept alive by the entry */
        lua_pop(L, 3);
        break;
      }
      lua_pop(L, 2);
    }
    if (name != NULL && st != NULL && was != NULL && strcmp(st, was) != 0)
      luaL_error(L, "ledger: lg:save cannot set phase %s to %s (it is recorded %s): "
                 "only the runner records phases", name, st, was);
    lua_pop(L, 3);
  }
  lua_settop(L, cur - 1);
}

/* lg:save([t]): t (when given; copied) becomes the state, checked like every write, and
   is written durably. */
static int lg_save(lua_State *L) {
  Ledger *lg = ledger_check(L, 1);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {
    const char *why;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getiuservalue(L, 1, UV_STATE);                     /* [lg, t, old] */
    ledger_deep_copy(L, 2);                                /* [lg, t, old, copy] */
    why = ledger_check_shape(L, 4, ledger_info(L, 1, "ticket"));
    if (why != NULL) return luaL_error(L, "ledger: lg:save: the state is not sound: %s", why);
    check_rewrite(L, 1, 4);
    lua_setiuservalue(L, 1, UV_STATE);
    if (ledger_try_save(L, 1, 0) != 0) {                   /* [lg, t, old, err] */
      lua_pushvalue(L, 3);
      lua_setiuservalue(L, 1, UV_STATE);                   /* the old state back */
      return luaL_error(L, "ledger: cannot record the state: %s", lua_tostring(L, 4));
    }
  } else
    ledger_save(L, 1, 0);
  ledger_raise_deferred(L, lg);
  return 0;
}

/*
** Sets t[key] = a copy of the value at vidx and saves with the event at eidx; when it
** cannot be recorded the old value is put back and it raises.
*/
static void set_and_save(lua_State *L, int self, int tidx, const char *key, int vidx,
                         int eidx) {
  tidx = lua_absindex(L, tidx);
  vidx = lua_absindex(L, vidx);
  eidx = lua_absindex(L, eidx);
  lua_getfield(L, tidx, key);                 /* [old] */
  ledger_deep_copy(L, vidx);
  lua_setfield(L, tidx, key);
  if (ledger_try_save(L, self, eidx) != 0) {  /* [old, err] */
    lua_pushvalue(L, -2);
    lua_setfield(L, tidx, key);               /* the old value back */
    luaL_error(L, "cannot record %s: %s", key, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
}

/* lg:set(key, value [, phase]): state.state[key] = value, durable before it returns;
   logged (the key, not the value: values may be secrets). */
static int lg_set(lua_State *L) {
  Ledger *lg = ledger_check(L, 1);
  const char *key = luaL_checkstring(L, 2), *phase;
  luaL_checkany(L, 3);
  phase = luaL_optstring(L, 4, NULL);
  lua_settop(L, 4);
  state_sub(L, 1, "state");                   /* [lg, key, value, phase, values] */
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "key");
  ledger_push_event(L, ledger_info(L, 1, "ticket"), phase, "state", 6);   /* [.., f, line] */
  set_and_save(L, 1, 5, key, 3, 7);
  ledger_raise_deferred(L, lg);
  return 0;
}

/* lg:record_step(key, phase, result): durable, then logged event=step status=done. */
static int lg_record_step(lua_State *L) {
  Ledger *lg = ledger_check(L, 1);
  const char *key = luaL_checkstring(L, 2);
  const char *phase = luaL_optstring(L, 3, NULL);
  lua_settop(L, 4);
  relua_store_crash(L, "step-before-record");
  state_sub(L, 1, "steps");                   /* [lg, key, phase, result, steps] */
  lua_createtable(L, 0, 3);                   /* [..., steps, entry] */
  if (phase) { lua_pushstring(L, phase); lua_setfield(L, -2, "phase"); }
  ledger_push_now(L);
  lua_setfield(L, -2, "at");
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "result");
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "key");
  lua_pushliteral(L, "done");
  lua_setfield(L, -2, "status");
  ledger_push_event(L, ledger_info(L, 1, "ticket"), phase, "step", 7);   /* [.., f, line] */
  set_and_save(L, 1, 5, key, 6, 8);
  relua_store_crash(L, "step-after-record");
  ledger_raise_deferred(L, lg);
  return 0;
}

/* lg:log(event [, fields [, sync]]): fields.phase names the phase; sync false for an
   event that records no change (written whole, not waited for: relua_StoreOps.append). */
static int lg_log(lua_State *L) {
  const char *phase = NULL;
  int sync;
  ledger_check(L, 1);
  luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "phase");
    phase = lua_tostring(L, -1);   /* the fields table keeps it alive */
    lua_pop(L, 1);
  }
  sync = lua_isnone(L, 4) || lua_toboolean(L, 4);
  lua_settop(L, 3);
  ledger_log_sync(L, 1, phase, lua_tostring(L, 2), lua_isnil(L, 3) ? 0 : 3, sync);
  return 0;
}

/* ---------------------------------------------------------------- functions */

/* ledger.valid_ticket(s) -> boolean */
static int l_valid_ticket(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, 1, &n);
  lua_pushboolean(L, s != NULL && lua_type(L, 1) == LUA_TSTRING && relua_store_valid_name(s, n));
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
  ledger_push_now(L);
  return 1;
}

/* ledger.clock() -> monotonic seconds */
static int l_clock(lua_State *L) {
  lua_pushnumber(L, ledger_monotonic());
  return 1;
}

/* ledger.check(state [, ticket]) -> true | nil, what is wrong: the shape check of every
   read and write, for those who build states (store copy, tests). */
static int l_check(lua_State *L) {
  const char *why;
  luaL_checkany(L, 1);
  why = ledger_check_shape(L, 1, luaL_optstring(L, 2, NULL));
  if (why == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/*
** ledger.edited(state) -> true | false | nil: whether the recorded phases of state (a
** state as read) were changed outside relua: true when they do not match the check relua
** wrote with them (phases_digest), false when they do, nil when the state has none (written
** by a relua before it).
*/
static int l_edited(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "phases_digest") != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  lua_getfield(L, 1, "phases");
  ledger_push_phases_digest(L, -1);
  lua_pushboolean(L, !lua_rawequal(L, -1, 2));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"start", ledger_l_start},
  {"check", l_check},
  {"edited", l_edited},
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
  {"run", ledger_run},
  {"start", ledger_start},
  {"settle", ledger_settle},
  {"version", lg_version},
  {"paths", lg_paths},
  {"crash", ledger_l_crash},
  {"close", lg_close},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", lg_close},
  {"__close", lg_close},
  {"__index", NULL},
  {NULL, NULL}
};

/* The Ledger metatable, made once: by relua.core.ledger, or by the first Store:ledger
   of a script that never required it. */
static void ledger_metatable(lua_State *L) {
  if (luaL_newmetatable(L, LEDGER_MT)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlibtable(L, methods);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

int luaopen_relua_core_ledger(lua_State *L) {
  store_metatable(L);
  ledger_metatable(L);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, SCHEMA);
  lua_setfield(L, -2, "SCHEMA");
  return 1;
}
