/*
** ledger_state.c: the state document of a ticket, decoded, checked and encoded. The same
** shape check guards every read and every write, so the core never writes a state it
** would later refuse as corrupt, and every field a command reads has the type it expects.
** The document is deterministic pretty JSON (relua_json_encode) with a schema version;
** decoding is the host's strict RFC 8259 decoder (never the global require).
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"

/* ---------------------------------------------------------------- decoding */

int ledger_json_decode(lua_State *L, int idx, const char *name) {
  size_t len;
  const char *text;
  idx = lua_absindex(L, idx);
  text = lua_tolstring(L, idx, &len);
  if (relua_json_decode(L, text, len, name) == 1) return 1;   /* strict RFC 8259 */
  lua_pop(L, 1);                                              /* [nil, message] */
  lua_remove(L, -2);
  return 0;
}

/* ---------------------------------------------------------------- the phases' check */

/*
** The check of the recorded phases written with every state ("phases_digest"): FNV-1a
** (64 bits) of the phases' compact deterministic JSON. It tells a state edited outside
** relua (a failed phase set to done by hand) from one relua wrote; it is not a security
** measure (anyone can recompute it), so it is a cheap checksum, not a libcrypto digest: a
** no-op re-run checks it without loading libcrypto.
*/
const char *ledger_push_phases_digest(lua_State *L, int idx) {
  uint64_t h = 1469598103934665603ULL;
  const unsigned char *p;
  size_t len, i;
  char hex[17];
  relua_json_encode(L, lua_absindex(L, idx), 0);
  p = (const unsigned char *)lua_tolstring(L, -1, &len);
  for (i = 0; i < len; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  for (i = 0; i < 16; i++) hex[i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 15];
  hex[16] = '\0';
  lua_pop(L, 1);
  return lua_pushfstring(L, "fnv1a64:%s", hex);
}

/* ---------------------------------------------------------------- the shape */

static const char *const statuses[] = {"pending", "running", "done", "failed", "reverted", NULL};

/* 1 when t[field] (t at idx) is absent or of type `type` (LUA_TNUMBER + 100: an integer). */
static int opt_field(lua_State *L, int idx, const char *field, int type) {
  int t = lua_getfield(L, idx, field), ok;
  if (type == LUA_TNUMBER + 100) ok = t == LUA_TNIL || lua_isinteger(L, -1);
  else ok = t == LUA_TNIL || t == type;
  lua_pop(L, 1);
  return ok;
}

/* NULL when every key of the table at idx is a string, else the offending key (pushed). */
static const char *non_string_key(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      const char *k = luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
      return k;
    }
  }
  return NULL;
}

/* The optional string fields of a phase entry, the integer ones. */
static const char *const phase_strings[] = {"msg", "started", "finished", "reverted",
                                            "revert_msg", NULL};
static const char *const phase_ints[] = {"rc", "attempts", "revert_rc", NULL};
static const char *const recipe_strings[] = {"sha256", "name", "fingerprint",
                                             "previous_sha256", "changed", NULL};
static const char *const failure_strings[] = {"message", "code", "hint", "tail", NULL};
/* A ticket's warnings (relua.publish.targets: a fallback that did not get the release). */
static const char *const warning_strings[] = {"target", "artifact", "status", "detail", NULL};

/* NULL when the failure record at idx is sound, else what is wrong (pushed). */
static const char *check_failure(lua_State *L, int idx, const char *phase) {
  const char *const *f;
  if (!lua_istable(L, idx))
    return lua_pushfstring(L, "phase %s: failure is not an object", phase);
  if (lua_getfield(L, idx, "rc") != LUA_TNIL && !lua_isinteger(L, -1))
    return lua_pushfstring(L, "phase %s: failure.rc is not an integer", phase);
  lua_pop(L, 1);
  for (f = failure_strings; *f; f++)
    if (!opt_field(L, idx, *f, LUA_TSTRING))
      return lua_pushfstring(L, "phase %s: failure.%s is not a string", phase, *f);
  return NULL;
}

/* NULL when phase entry i (at idx) is sound, else what is wrong (pushed). */
static const char *check_phase(lua_State *L, int idx, int i) {
  const char *const *s;
  const char *name, *st;
  if (!lua_istable(L, idx)) return lua_pushfstring(L, "phase %d is not an object", i);
  lua_getfield(L, idx, "name");
  name = lua_tostring(L, -1);
  if (lua_type(L, -1) != LUA_TSTRING || *name == '\0')
    return lua_pushfstring(L, "phase %d has no name", i);
  lua_getfield(L, idx, "status");
  st = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  for (s = statuses; st != NULL && *s != NULL && strcmp(*s, st) != 0; s++) {}
  if (st == NULL || *s == NULL) return lua_pushfstring(L, "phase %s has an unknown status", name);
  lua_pop(L, 1);                                           /* [name] */
  for (s = phase_strings; *s; s++)
    if (!opt_field(L, idx, *s, LUA_TSTRING))
      return lua_pushfstring(L, "phase %s: %s is not a string", name, *s);
  for (s = phase_ints; *s; s++)
    if (!opt_field(L, idx, *s, LUA_TNUMBER + 100))
      return lua_pushfstring(L, "phase %s: %s is not an integer", name, *s);
  if (lua_getfield(L, idx, "failure") != LUA_TNIL) {
    const char *why = check_failure(L, lua_gettop(L), name);
    if (why != NULL) return why;
  }
  lua_pop(L, 2);
  return NULL;
}

/* NULL when the array at idx has exactly the keys 1..n. */
static int is_array(lua_State *L, int idx, lua_Integer *n) {
  lua_Integer count = 0;
  idx = lua_absindex(L, idx);
  *n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > *n) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count == *n;
}

const char *ledger_check_shape(lua_State *L, int idx, const char *ticket) {
  lua_Integer i, n;
  const char *const *s;
  const char *bad;
  int top = lua_gettop(L), phases, seen;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 12, "ledger: shape check");
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
  if (!opt_field(L, idx, "created", LUA_TSTRING)) return lua_pushliteral(L, "created is not a string");
  if (!opt_field(L, idx, "updated", LUA_TSTRING)) return lua_pushliteral(L, "updated is not a string");
  if (!opt_field(L, idx, "phases_digest", LUA_TSTRING))
    return lua_pushliteral(L, "phases_digest is not a string");
  lua_getfield(L, idx, "recipe");
  if (!lua_istable(L, -1)) return lua_pushliteral(L, "no recipe record");
  lua_getfield(L, -1, "path");
  if (lua_type(L, -1) != LUA_TSTRING) return lua_pushliteral(L, "no recipe path");
  lua_pop(L, 1);
  for (s = recipe_strings; *s; s++)
    if (!opt_field(L, lua_gettop(L), *s, LUA_TSTRING))
      return lua_pushfstring(L, "recipe.%s is not a string", *s);
  lua_pop(L, 1);
  lua_getfield(L, idx, "phases");
  phases = lua_gettop(L);
  if (!lua_istable(L, -1)) return lua_pushliteral(L, "no phases");
  if (!is_array(L, phases, &n)) return lua_pushliteral(L, "phases is not an array");
  if (n < 1) return lua_pushliteral(L, "no phases");
  lua_newtable(L);                                         /* [phases, seen] */
  seen = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    const char *why;
    lua_rawgeti(L, phases, i);
    why = check_phase(L, lua_gettop(L), (int)i);
    if (why != NULL) return why;
    lua_getfield(L, -1, "name");
    if (lua_rawget(L, seen) != LUA_TNIL) {
      lua_getfield(L, -2, "name");
      return lua_pushfstring(L, "phase %s appears twice", lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "name");
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  lua_getfield(L, idx, "state");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return lua_pushliteral(L, "state is not an object");
    if ((bad = non_string_key(L, -1)) != NULL)
      return lua_pushfstring(L, "state is not an object (key %s)", bad);
  }
  lua_getfield(L, idx, "steps");
  if (!lua_isnil(L, -1)) {
    int steps = lua_gettop(L);
    if (!lua_istable(L, -1)) return lua_pushliteral(L, "steps is not an object");
    if ((bad = non_string_key(L, -1)) != NULL)
      return lua_pushfstring(L, "steps is not an object (key %s)", bad);
    lua_pushnil(L);
    while (lua_next(L, steps) != 0) {
      if (!lua_istable(L, -1) || !opt_field(L, lua_gettop(L), "phase", LUA_TSTRING) ||
          !opt_field(L, lua_gettop(L), "at", LUA_TSTRING))
        return lua_pushfstring(L, "step %s is not a step record", lua_tostring(L, -2));
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  lua_getfield(L, idx, "warnings");
  if (!lua_isnil(L, -1)) {
    int w = lua_gettop(L);
    if (!lua_istable(L, w) || !is_array(L, w, &n)) return lua_pushliteral(L, "warnings is not an array");
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, w, i);
      if (!lua_istable(L, -1)) return lua_pushfstring(L, "warning %d is not an object", (int)i);
      for (s = warning_strings; *s; s++)
        if (!opt_field(L, lua_gettop(L), *s, LUA_TSTRING))
          return lua_pushfstring(L, "warning %d: %s is not a string", (int)i, *s);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  return NULL;
}

/* ---------------------------------------------------------------- reading */

int ledger_decode_state(lua_State *L, int idx, const char *where, const char *ticket) {
  int top = lua_gettop(L);
  const char *why;
  size_t len;
  idx = lua_absindex(L, idx);
  lua_tolstring(L, idx, &len);
  if (len == 0)
    return relua_fail(L, "corrupt", "the state file %s is empty (truncated?)", where);
  if (!ledger_json_decode(L, idx, where)) {                /* [msg] */
    lua_pushfstring(L, "the state file %s does not parse: %s", where, lua_tostring(L, -1));
  } else {
    why = ledger_check_shape(L, top + 1, ticket);
    if (why == NULL) return 1;                             /* [state] */
    lua_pushfstring(L, "the state file %s is not a relua ledger: %s", where, why);
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  lua_pushnil(L);
  lua_insert(L, top + 1);
  lua_pushliteral(L, "corrupt");
  return 3;
}

int ledger_read_state(lua_State *L, relua_Store *s, const char *ticket, int64_t *version) {
  int top = lua_gettop(L), st = s->ops->read(s, L, ticket, version), n;
  if (st != RELUA_STORE_OK) return ledger_push_failure(L, st);   /* [doc] */
  s->ops->where(s, L, ticket);                                   /* [doc, where] */
  n = ledger_decode_state(L, top + 1, lua_tostring(L, -1), ticket);
  lua_rotate(L, top + 1, n);
  lua_settop(L, top + n);
  return n;
}

/* ---------------------------------------------------------------- writing */

/* [state]: sets its phases' check, then encodes it (under lua_pcall: either can raise). */
static int encode_pretty(lua_State *L) {
  lua_getfield(L, 1, "phases");
  ledger_push_phases_digest(L, 2);
  lua_setfield(L, 1, "phases_digest");
  lua_settop(L, 1);
  relua_json_encode(L, 1, 1);
  return 1;
}

int ledger_store_state(lua_State *L, int self, int eidx) {
  Ledger *lg = ledger_check(L, self);
  const char *ticket = ledger_info(L, self, "ticket"), *why, *data, *ev = NULL;
  size_t len, elen = 0;
  int64_t version = 0;
  int top, status, st, sig, state;
  if (eidx) eidx = lua_absindex(L, eidx);
  top = lua_gettop(L);
  sig = relua_store_crash_due(L, "state-encode");
  if (sig != 0) kill(getpid(), sig);
  if (lua_getiuservalue(L, self, UV_STATE) != LUA_TTABLE)
    luaL_error(L, "ledger: no state to save (call lg:save(t) first)");
  state = lua_gettop(L);
  ledger_push_now(L);
  lua_setfield(L, state, "updated");
  why = ledger_check_shape(L, state, ticket);
  if (why != NULL) {                                       /* [state, why] */
    lua_pushfstring(L, "the state is not sound: %s", why);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return -1;
  }
  lua_pushcfunction(L, encode_pretty);
  lua_pushvalue(L, state);
  status = lua_pcall(L, 1, 1, 0);
  if (status != LUA_OK && ledger_is_interrupt(L, -1)) {
    lg->interrupted = 1;                                   /* the hook is spent: again */
    lua_pop(L, 1);
    lua_pushcfunction(L, encode_pretty);
    lua_pushvalue(L, state);
    status = lua_pcall(L, 1, 1, 0);
  }
  if (status != LUA_OK) {                                  /* [state, err] */
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return -1;
  }
  lua_pushliteral(L, "\n");
  lua_concat(L, 2);
  data = lua_tolstring(L, -1, &len);
  if (eidx) ev = lua_tolstring(L, eidx, &elen);
  version = lg->version;
  st = lg->s->ops->replace(lg->s, L, lg->lk, ticket, data, len, lg->version, ev, elen,
                           &version);
  /* The state may be replaced even when the event after it failed (a full disk): the
     store then gives its new version, so the next write is not taken for a conflict. */
  lg->version = version;
  if (st != RELUA_STORE_OK) {                              /* [.., msg] */
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return st;
  }
  lua_settop(L, top);
  return 0;
}

void ledger_raise_store(lua_State *L, int self, int st) {
  const char *msg = lua_tostring(L, -1);
  if (st == RELUA_STORE_CONFLICT)
    relua_raise(L, 1, "conflict", "ticket %s: a newer state was written by someone else; "
                "nothing was overwritten (%s)", ledger_info(L, self, "ticket"), msg);
  relua_raise(L, 1, st == RELUA_STORE_LOST ? "lost" : "store", "%s", msg);
}

int ledger_try_save(lua_State *L, int self, int eidx) {
  int st = ledger_store_state(L, self, eidx);
  if (st > 0) ledger_raise_store(L, self, st);
  return st;
}

void ledger_save(lua_State *L, int self, int eidx) {
  if (ledger_try_save(L, self, eidx) != 0)
    luaL_error(L, "ledger: cannot record the state: %s", lua_tostring(L, -1));
}
