/*
** ledger_log.c: the audit events, as logfmt lines:
**   2026-05-18T10:00:00Z ticket=1234 phase=prepare event=failed rc=1 msg="..."
** timestamp, ticket, phase, event, rc, the other fields sorted, msg last; values quoted
** and escaped when logfmt needs it; the whole line masked (relua_mask). The store appends
** it whole and durably (store.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

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

void ledger_push_event(lua_State *L, const char *ticket, const char *phase, const char *event,
                       int fidx) {
  const char *keys[MAX_FIELDS] = {NULL};
  int nkeys = 0, i, top, parts;
  size_t len;
  const char *line;
  if (fidx) fidx = lua_absindex(L, fidx);
  top = lua_gettop(L);
  luaL_checkstack(L, MAX_FIELDS + 10, "ledger log");
  ledger_push_now(L);
  lua_pushfstring(L, " ticket=%s", ticket);
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
  relua_mask(L, line, len, NULL);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

void ledger_log(lua_State *L, int self, const char *phase, const char *event, int fidx) {
  ledger_log_sync(L, self, phase, event, fidx, 1);
}

void ledger_log_sync(lua_State *L, int self, const char *phase, const char *event, int fidx,
                     int sync) {
  Ledger *lg = ledger_check(L, self);
  const char *line;
  size_t len;
  int st, top;
  if (fidx) fidx = lua_absindex(L, fidx);
  top = lua_gettop(L);
  relua_store_crash(L, "log-event");
  ledger_push_event(L, ledger_info(L, self, "ticket"), phase, event, fidx);
  line = lua_tolstring(L, -1, &len);
  st = lg->s->ops->append(lg->s, L, lg->lk, ledger_info(L, self, "ticket"), line, len, sync);
  if (st != RELUA_STORE_OK)   /* an unrecorded event must not pass silently */
    relua_raise(L, 1, st == RELUA_STORE_LOST ? "lost" : "store", "%s", lua_tostring(L, -1));
  lua_settop(L, top);
}
