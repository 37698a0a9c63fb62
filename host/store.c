/*
** store.c: relua.core.store, the Lua face of the storage interface (store.h), and what
** the core and every backend share: the holder record (its one parser), result codes,
** name rules. Opening picks the backend from the URL; the postgres backend is a lazy
** module loaded through the host's own loader (relua_open_owned), never through Lua.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"

/* ---------------------------------------------------------------- shared */

int relua_store_valid_name(const char *s, size_t n) {
  size_t i;
  if (n < 1 || n > 64) return 0;
  if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

const char *relua_store_code(int status) {
  switch (status) {
    case RELUA_STORE_OK: return "ok";
    case RELUA_STORE_NOTFOUND: return "ENOENT";
    case RELUA_STORE_LOCKED: return "locked";
    case RELUA_STORE_CONFLICT: return "conflict";
    case RELUA_STORE_CORRUPT: return "corrupt";
    case RELUA_STORE_LOST: return "lost";
    default: return "store";
  }
}

void relua_store_push_holder(lua_State *L, const char *rec) {
  lua_newtable(L);
  if (rec == NULL) return;
  while (*rec) {
    const char *eq, *end;
    while (*rec == ' ' || *rec == '\n') rec++;
    if (!*rec) break;
    end = rec + strcspn(rec, " \n");
    eq = memchr(rec, '=', (size_t)(end - rec));
    if (eq != NULL && eq > rec) {
      lua_pushlstring(L, rec, (size_t)(eq - rec));
      if (eq - rec == 3 && memcmp(rec, "pid", 3) == 0) {
        char *stop;
        long pid = strtol(eq + 1, &stop, 10);
        if (stop != end) lua_pushlstring(L, eq + 1, (size_t)(end - eq - 1));
        else lua_pushinteger(L, pid);
      } else
        lua_pushlstring(L, eq + 1, (size_t)(end - eq - 1));
      lua_settable(L, -3);
    }
    rec = end;
  }
}

void relua_store_holder_record(char *buf, size_t n) {
  char host[256] = "?";
  time_t t = time(NULL);
  struct tm tm;
  size_t i;
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  for (i = 0; host[i]; i++)
    if (host[i] == ' ' || host[i] == '\n' || host[i] == '=') host[i] = '_';
  gmtime_r(&t, &tm);
  snprintf(buf, n, "pid=%ld host=%s since=%04d-%02d-%02dT%02d:%02d:%02dZ\n", (long)getpid(),
           host, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec);
}

/* ---------------------------------------------------------------- opening */

int relua_open_owned(lua_State *L, const char *module) {
  int status;
  if (lua_getfield(L, LUA_REGISTRYINDEX, "relua.owned") != LUA_TFUNCTION) {
    lua_pop(L, 1);
    lua_pushfstring(L, "no host module %s in this build", module);
    return RELUA_STORE_ERROR;
  }
  lua_pushstring(L, module);
  status = lua_pcall(L, 1, 1, 0);
  if (status != LUA_OK && lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushfstring(L, "cannot load %s", module);
  }
  return status == LUA_OK ? RELUA_STORE_OK : RELUA_STORE_ERROR;
}

relua_Store *store_check(lua_State *L, int idx) {
  StoreBox *b = (StoreBox *)luaL_checkudata(L, idx, STORE_MT);
  if (b->s == NULL) luaL_error(L, "store: the store is closed");
  return b->s;
}

static int st_close(lua_State *L) {
  StoreBox *b = (StoreBox *)luaL_checkudata(L, 1, STORE_MT);
  if (b->s != NULL) {
    b->s->ops->close(b->s);
    b->s = NULL;
  }
  return 0;
}

/* Pushes url with any password of its userinfo left out, and secrets masked. */
static const char *push_safe_url(lua_State *L, const char *url) {
  const char *scheme = strstr(url, "://"), *at, *colon, *slash;
  if (scheme != NULL) {
    const char *auth = scheme + 3;
    slash = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(slash - auth));
    colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL) {
      lua_pushlstring(L, url, (size_t)(colon - url));
      lua_pushstring(L, at);
      lua_concat(L, 2);
      url = lua_tostring(L, -1);
      relua_mask(L, url, strlen(url), NULL);
      lua_remove(L, -2);
      return lua_tostring(L, -1);
    }
  }
  return relua_mask(L, url, strlen(url), NULL);
}

static int starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Pushes a closed Store box (box first). */
static StoreBox *new_box(lua_State *L) {
  StoreBox *b = (StoreBox *)lua_newuserdatauv(L, sizeof(StoreBox), 0);
  b->s = NULL;
  luaL_setmetatable(L, STORE_MT);
  return b;
}

int store_open(lua_State *L, const char *url, const char *home) {
  const relua_StoreBackend *be = &relua_store_folder;
  const char *target;
  StoreBox *b;
  int st, top = lua_gettop(L);
  if (url == NULL) url = getenv("RELUA_STORE");
  if (url == NULL || *url == '\0') {
    const char *home = getenv("RELUA_HOME");
    target = home != NULL && *home != '\0' ? home : ".relua";
  } else if (starts(url, "postgres://") || starts(url, "postgresql://")) {
    target = url;
    if (relua_open_owned(L, "relua.core.store_pg") != RELUA_STORE_OK ||
        lua_type(L, -1) != LUA_TLIGHTUSERDATA) {
      const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                        : "no relua.core.store_pg";
      const char *safe = push_safe_url(L, url);
      lua_pushfstring(L, "cannot use the store %s: this relua has no PostgreSQL backend (%s)",
                      safe, why);
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      lua_pushnil(L);
      lua_insert(L, top + 1);
      lua_pushliteral(L, "unsupported");
      return 3;
    }
    be = (const relua_StoreBackend *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  } else if (starts(url, "folder:")) {
    target = url + 7;
  } else if (starts(url, "file://")) {
    target = url + 7;
  } else if (strstr(url, "://") != NULL) {
    push_safe_url(L, url);
    return relua_fail(L, "usage",
                      "unknown store %s: use a folder (a path, folder:PATH or file://PATH) or "
                      "postgres://...", lua_tostring(L, -1));
  } else
    target = url;
  if (*target == '\0') return relua_fail(L, "usage", "the store URL %s names no folder", url);
  b = new_box(L);                                          /* [box] */
  st = be->open(L, target, home, &b->s);
  if (st != RELUA_STORE_OK) {                              /* [box, msg] */
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushstring(L, relua_store_code(st));
    return 3;
  }
  return 1;
}

int store_open_folder_dir(lua_State *L, const char *dir) {
  StoreBox *b;
  size_t n = strlen(dir);
  const char *slash;
  int st;
  while (n > 1 && dir[n - 1] == '/') n--;
  lua_pushlstring(L, dir, n);                              /* [dir] */
  dir = lua_tostring(L, -1);
  slash = strrchr(dir, '/');
  if (slash == NULL) lua_pushliteral(L, "lanes");
  else if (slash == dir) lua_pushliteral(L, "/lanes");
  else {
    lua_pushlstring(L, dir, (size_t)(slash - dir));
    lua_pushliteral(L, "/lanes");
    lua_concat(L, 2);
  }                                                        /* [dir, lanes] */
  b = new_box(L);                                          /* [dir, lanes, box] */
  st = relua_store_folder_open_dirs(L, dir, lua_tostring(L, -2), &b->s);
  if (st != RELUA_STORE_OK) return luaL_error(L, "store: %s", lua_tostring(L, -1));
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- the Lua face */

static const char *check_name(lua_State *L, int arg, const char *what) {
  size_t n;
  const char *s = luaL_checklstring(L, arg, &n);
  if (!relua_store_valid_name(s, n))
    luaL_argerror(L, arg, lua_pushfstring(L, "invalid %s (1-64 characters of A-Z a-z 0-9 . _ -)", what));
  return s;
}

/* store.open([url [, home]]) -> Store | nil, message, code */
static int l_open(lua_State *L) {
  const char *url = luaL_optstring(L, 1, NULL), *home = luaL_optstring(L, 2, NULL);
  lua_settop(L, 2);
  return store_open(L, url, home);
}

/* store.url() -> $RELUA_STORE or nil */
static int l_url(lua_State *L) {
  const char *u = getenv("RELUA_STORE");
  if (u == NULL || *u == '\0') lua_pushnil(L);
  else lua_pushstring(L, u);
  return 1;
}

static int st_describe(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  s->ops->describe(s, L);
  return 1;
}

static int st_scheme(lua_State *L) {
  lua_pushstring(L, store_check(L, 1)->ops->scheme);
  return 1;
}

static int st_where(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  s->ops->where(s, L, check_name(L, 2, "ticket"));
  return 1;
}

static int st_outdir(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  s->ops->outdir(s, L, check_name(L, 2, "ticket"));
  return 1;
}

static int st_tickets(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  int st = s->ops->tickets(s, L);
  return st == RELUA_STORE_OK ? 1 : ledger_push_failure(L, st);
}

static int st_lanes(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  int st = s->ops->lanes(s, L);
  return st == RELUA_STORE_OK ? 1 : ledger_push_failure(L, st);
}

/* Store:read(ticket) -> state (a validated copy), version | nil, message, code */
static int st_read(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  int64_t version = 0;
  int n = ledger_read_state(L, s, check_name(L, 2, "ticket"), &version);
  if (n != 1) return n;
  lua_pushinteger(L, (lua_Integer)version);
  return 2;
}

static int st_events(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  int st = s->ops->events(s, L, check_name(L, 2, "ticket"));
  return st == RELUA_STORE_OK ? 1 : ledger_push_failure(L, st);
}

/* Store:holder(ticket) -> {pid=, host=, since=} | nil */
static int st_holder(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  int st = s->ops->holder(s, L, check_name(L, 2, "ticket"));
  if (st != RELUA_STORE_OK) return ledger_push_failure(L, st);
  if (lua_isnil(L, -1)) return 1;
  relua_store_push_holder(L, lua_tostring(L, -1));
  return 1;
}

/* Store:ledger(ticket) -> Ledger | nil, message, code [, holder] */
static int st_ledger(lua_State *L) {
  store_check(L, 1);
  return ledger_open_in(L, 1, check_name(L, 2, "ticket"));
}

/* Decodes the array of record strings at idx into a new array of tables (pushed): 1, or
   0 with a message pushed (a corrupt record, named by its position). */
static int decode_records(lua_State *L, int idx, const char *lane) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
  idx = lua_absindex(L, idx);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (!ledger_json_decode(L, lua_gettop(L), "record") || !lua_istable(L, -1)) {
      const char *why = lua_isstring(L, -1) ? lua_tostring(L, -1) : "not a JSON object";
      lua_pushfstring(L, "control record %d of lane %s is corrupt: %s", (int)i, lane, why);
      return 0;
    }
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
  return 1;
}

/* Store:controls(lane) -> {record, ...} | nil, message, code */
static int st_controls(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  const char *lane = check_name(L, 2, "lane");
  int st = s->ops->controls(s, L, lane);
  if (st != RELUA_STORE_OK) return ledger_push_failure(L, st);
  if (!decode_records(L, -1, lane)) return ledger_push_failure(L, RELUA_STORE_CORRUPT);
  return 1;
}

typedef struct Decide {
  int fn;        /* the Lua decide function's index */
  int errslot;   /* where an error raised by it is kept, to raise once the lock is free */
  const char *lane;
} Decide;

static int encode_compact(lua_State *L) {
  relua_json_encode(L, 1, 0);
  return 1;
}

static int decide_cb(lua_State *L, void *ud) {
  Decide *d = (Decide *)ud;
  int recs = lua_gettop(L), status;
  if (!decode_records(L, recs, d->lane)) {                 /* [recs, copies|x, msg] */
    lua_replace(L, recs);
    lua_settop(L, recs);
    return RELUA_STORE_CORRUPT;
  }
  lua_pushvalue(L, d->fn);
  lua_insert(L, -2);
  status = lua_pcall(L, 1, 1, 0);                          /* [recs, result | err] */
  if (status == LUA_OK && lua_istable(L, -1)) {
    lua_pushcfunction(L, encode_compact);
    lua_insert(L, -2);
    status = lua_pcall(L, 1, 1, 0);                        /* [recs, json | err] */
    if (status == LUA_OK) {
      size_t n;
      const char *j = lua_tolstring(L, -1, &n);
      if (n < 2 || j[0] != '{') {
        lua_pop(L, 1);
        lua_pushliteral(L, "store: control_append: the record must be a table with string keys (a JSON object)");
        status = LUA_ERRRUN;
      } else {
        relua_mask(L, j, n, NULL);
        lua_replace(L, recs);
        lua_settop(L, recs);
        return RELUA_STORE_OK;
      }
    }
  } else if (status == LUA_OK && !lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "store: control_append: decide must return a record (a table) or nil");
    status = LUA_ERRRUN;
  } else if (status == LUA_OK) {
    lua_replace(L, recs);
    return RELUA_STORE_OK;                                 /* [nil] */
  }
  lua_replace(L, d->errslot);                              /* the error, for later */
  lua_settop(L, recs - 1);
  lua_pushliteral(L, "the decision raised an error");
  return RELUA_STORE_ERROR;
}

/* Store:control_append(lane, decide) -> record | nil  (| nil, message, code) */
static int st_control_append(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  Decide d;
  int st;
  d.lane = check_name(L, 2, "lane");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  lua_pushnil(L);                                          /* [st, lane, fn, errslot] */
  d.fn = 3;
  d.errslot = 4;
  st = s->ops->control_append(s, L, d.lane, decide_cb, &d);
  if (!lua_isnil(L, 4)) {
    lua_pushvalue(L, 4);
    return lua_error(L);                                   /* the lock is free again */
  }
  if (st != RELUA_STORE_OK) return ledger_push_failure(L, st);
  if (lua_isnil(L, -1)) return 1;
  if (!ledger_json_decode(L, lua_gettop(L), "record")) return ledger_push_failure(L, RELUA_STORE_CORRUPT);
  return 1;
}

/*
** Store:import(ticket, state, events) -> true | nil, message, code
** Writes a ticket copied from another store: refused when the ticket is locked or already
** has a state here; the state is checked like every write; events (text of complete lines)
** become its audit log, in the same replace as the state.
*/
static int st_import(lua_State *L) {
  relua_Store *s = store_check(L, 1);
  const char *ticket = check_name(L, 2, "ticket");
  size_t len, elen;
  const char *doc, *why, *events;
  relua_StoreLock *lk = NULL;
  char record[512];
  int64_t version = 0, have = 0;
  int st;
  luaL_checktype(L, 3, LUA_TTABLE);
  events = luaL_optlstring(L, 4, "", &elen);
  lua_settop(L, 4);
  ledger_deep_copy(L, 3);                                  /* [.., copy] */
  why = ledger_check_shape(L, 5, ticket);
  if (why != NULL) return relua_fail(L, "corrupt", "ticket %s: the state is not sound: %s", ticket, why);
  relua_json_encode(L, 5, 1);
  lua_pushliteral(L, "\n");
  lua_concat(L, 2);                                        /* [.., copy, doc] */
  doc = lua_tolstring(L, -1, &len);
  relua_store_holder_record(record, sizeof record);
  st = s->ops->lock(s, L, ticket, record, &lk);
  if (st != RELUA_STORE_OK) {
    if (st == RELUA_STORE_LOCKED) {
      lua_pop(L, 1);
      lua_pushfstring(L, "ticket %s is locked by a run in the target store", ticket);
    }
    return ledger_push_failure(L, st);
  }
  st = s->ops->read(s, L, ticket, &have);
  if (st == RELUA_STORE_OK) {
    lua_pop(L, 1);
    s->ops->unlock(s, lk);
    s->ops->where(s, L, ticket);
    return relua_fail(L, "EEXIST", "ticket %s already has a state in the target store (%s)",
                      ticket, lua_tostring(L, -1));
  }
  if (st != RELUA_STORE_NOTFOUND) {
    s->ops->unlock(s, lk);
    return ledger_push_failure(L, st);
  }
  lua_pop(L, 1);
  st = s->ops->replace(s, L, lk, ticket, doc, len, 0, elen > 0 ? events : NULL, elen, &version);
  s->ops->unlock(s, lk);
  if (st != RELUA_STORE_OK) return ledger_push_failure(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** store.migrate(url) -> version found, version now | nil, message, code
** Creates or upgrades the schema of a store that has one (relua store migrate).
*/
static int l_migrate(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  const relua_StoreBackend *be;
  int64_t found = 0, now = 0;
  int st;
  lua_settop(L, 1);
  if (!starts(url, "postgres://") && !starts(url, "postgresql://")) {
    lua_pushnil(L);
    lua_pushliteral(L, "only a PostgreSQL store has a schema to migrate (the folder store's "
                       "files need none)");
    lua_pushliteral(L, "usage");
    return 3;
  }
  if (relua_open_owned(L, "relua.core.store_pg") != RELUA_STORE_OK ||
      lua_type(L, -1) != LUA_TLIGHTUSERDATA) {
    lua_pushnil(L);
    lua_pushfstring(L, "this relua has no PostgreSQL backend (%s)",
                    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "no relua.core.store_pg");
    lua_pushliteral(L, "unsupported");
    return 3;
  }
  be = (const relua_StoreBackend *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  st = be->migrate(L, url, &found, &now);
  if (st != RELUA_STORE_OK) {                              /* [url, msg] */
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushstring(L, relua_store_code(st));
    return 3;
  }
  lua_pushinteger(L, (lua_Integer)found);
  lua_pushinteger(L, (lua_Integer)now);
  return 2;
}

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"migrate", l_migrate},
  {"url", l_url},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"describe", st_describe},
  {"scheme", st_scheme},
  {"where", st_where},
  {"outdir", st_outdir},
  {"tickets", st_tickets},
  {"read", st_read},
  {"events", st_events},
  {"holder", st_holder},
  {"ledger", st_ledger},
  {"lanes", st_lanes},
  {"controls", st_controls},
  {"control_append", st_control_append},
  {"import", st_import},
  {"close", st_close},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", st_close},
  {"__close", st_close},
  {"__index", NULL},
  {NULL, NULL}
};

/* The Store metatable (made once; relua.core.ledger needs it too). */
void store_metatable(lua_State *L) {
  if (luaL_newmetatable(L, STORE_MT)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlibtable(L, methods);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

int luaopen_relua_core_store(lua_State *L) {
  store_metatable(L);
  luaL_newlib(L, funcs);
  return 1;
}
