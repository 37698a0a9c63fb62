/*
** ledger_run.c: the phase runner. Where a run starts, which phases are skipped and what
** is recorded are decided here, from the recorded phases and --from, whatever the Lua
** caller asks: a phase runs only when every phase before it is `done`, and is `done` only
** after its function returned. A failure halts and is recorded with its failure record
** {rc, message, code, hint, tail} in the phase's entry.
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ledger.h"

#define TAIL_BYTES (64 * 1024)
#define TAIL_LINES 200

static void set_str(lua_State *L, int t, const char *k, const char *v) {
  if (v) lua_pushstring(L, v); else lua_pushnil(L);
  lua_setfield(L, t, k);
}

/* The status of the phase entry at idx (a string the entry keeps alive). */
static const char *status_of(lua_State *L, int idx) {
  const char *s;
  lua_getfield(L, idx, "status");
  s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s != NULL ? s : "pending";
}

/*
** The first phase to run in the phases array at idx: its index, 0 when all are done. With
** from: its index, when every phase before it is done. -1 with the message and the hint
** pushed when from is not a phase or an earlier phase is not done.
*/
static lua_Integer start_of(lua_State *L, int idx, const char *from) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx), at = 0;
  idx = lua_absindex(L, idx);
  if (from != NULL) {
    luaL_Buffer b;
    for (i = 1; i <= n && at == 0; i++) {
      lua_rawgeti(L, idx, i);
      lua_getfield(L, -1, "name");
      if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), from) == 0) at = i;
      lua_pop(L, 2);
    }
    if (at == 0) {
      luaL_buffinit(L, &b);
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        lua_getfield(L, -1, "name");
        lua_remove(L, -2);
        if (i > 1) luaL_addstring(&b, ", ");
        luaL_addvalue(&b);
      }
      luaL_pushresult(&b);
      lua_pushfstring(L, "unknown phase \"%s\": the phases are %s", from, lua_tostring(L, -1));
      lua_remove(L, -2);
      lua_pushnil(L);
      return -1;
    }
    for (i = 1; i < at; i++) {
      const char *st;
      lua_rawgeti(L, idx, i);
      st = status_of(L, lua_gettop(L));
      if (strcmp(st, "done") != 0) {
        lua_getfield(L, -1, "name");
        lua_pushfstring(L, "cannot start at phase %s: the earlier phase %s is not done (%s)",
                        from, lua_tostring(L, -1), st);
        lua_pushfstring(L, "run the release without --from to continue where it stopped, "
                        "or use --from=%s", lua_tostring(L, -2));
        lua_remove(L, -3);
        lua_remove(L, -3);                                 /* [msg, hint] */
        return -1;
      }
      lua_pop(L, 1);
    }
    return at;
  }
  for (i = 1; i <= n; i++) {
    int done;
    lua_rawgeti(L, idx, i);
    done = strcmp(status_of(L, lua_gettop(L)), "done") == 0;
    lua_pop(L, 1);
    if (!done) return i;
  }
  return 0;
}

/* Pushes the ledger's state.phases (the core's own table). */
static void push_phases(lua_State *L, int self) {
  if (lua_getiuservalue(L, self, UV_STATE) != LUA_TTABLE)
    luaL_error(L, "ledger: no state yet (call lg:save(t) first)");
  lua_getfield(L, -1, "phases");
  lua_remove(L, -2);
}

/* ledger.start(phases [, from]) and lg:start([from]) -> index | false | nil, message, hint */
static int push_start(lua_State *L, int phases, const char *from) {
  lua_Integer at = start_of(L, phases, from);
  if (at < 0) {
    lua_pushnil(L);
    lua_insert(L, -3);
    return 3;
  }
  if (at == 0) lua_pushboolean(L, 0);
  else lua_pushinteger(L, at);
  return 1;
}

int ledger_start(lua_State *L) {
  const char *from;
  ledger_check(L, 1);
  from = luaL_optstring(L, 2, NULL);
  push_phases(L, 1);
  return push_start(L, lua_gettop(L), from);
}

int ledger_l_start(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  return push_start(L, 1, luaL_optstring(L, 2, NULL));
}

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

/* Pushes the entry of phases[] named name, or nil. */
static void push_entry(lua_State *L, int phases, const char *name) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, phases);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, phases, i);
    lua_getfield(L, -1, "name");
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0) {
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 2);
  }
  lua_pushnil(L);
}

/* The size of the phase's output file (0 when absent). */
static off_t out_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
}

/*
** Pushes the tail of what the phase wrote to its output file since offset `from`: at most
** TAIL_LINES lines and TAIL_BYTES bytes, masked; nil when nothing was written.
*/
static void push_tail(lua_State *L, const char *path, off_t from) {
  off_t size = out_size(path), start = from;
  luaL_Buffer buf;
  const char *s, *b, *e, *p;
  size_t len, lines = 0;
  ssize_t r;
  int fd;
  if (size <= from) { lua_pushnil(L); return; }
  if (size - start > TAIL_BYTES) start = size - TAIL_BYTES;
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) { lua_pushnil(L); return; }
  luaL_buffinit(L, &buf);
  while ((r = pread(fd, luaL_prepbuffsize(&buf, (size_t)(size - start)),
                    (size_t)(size - start), start)) < 0 && errno == EINTR) {}
  close(fd);
  luaL_addsize(&buf, r > 0 ? (size_t)r : 0);
  luaL_pushresult(&buf);
  s = lua_tolstring(L, -1, &len);
  b = s;
  e = s + len;
  if (start > from) {                  /* cut mid-line: begin at the first whole line */
    const char *nl = memchr(b, '\n', len);
    if (nl != NULL) b = nl + 1;
  }
  p = e;
  if (p > b && p[-1] == '\n') p--;
  while (p > b) {                      /* back to the start of the last TAIL_LINES lines */
    if (p[-1] == '\n' && ++lines == TAIL_LINES) break;
    p--;
  }
  b = p;
  if (b == e) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  relua_mask(L, b, (size_t)(e - b), NULL);
  lua_remove(L, -2);
}

/* Builds the failure record of the error at err into the entry at entry. */
static void record_failure(lua_State *L, int entry, int err, lua_Integer rc, const char *msg,
                           const char *out, off_t from) {
  int f;
  lua_createtable(L, 0, 5);
  f = lua_gettop(L);
  lua_pushinteger(L, rc);
  lua_setfield(L, f, "rc");
  lua_pushstring(L, msg);
  lua_setfield(L, f, "message");
  if (lua_istable(L, err)) {
    if (lua_getfield(L, err, "code") == LUA_TSTRING) {
      relua_mask(L, lua_tostring(L, -1), lua_rawlen(L, -1), NULL);
      lua_setfield(L, f, "code");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, err, "hint") == LUA_TSTRING) {
      relua_mask(L, lua_tostring(L, -1), lua_rawlen(L, -1), NULL);
      lua_setfield(L, f, "hint");
    }
    lua_pop(L, 1);
  }
  if (out != NULL) {
    push_tail(L, out, from);
    lua_setfield(L, f, "tail");
  }
  lua_setfield(L, entry, "failure");
}

/* Removes the steps recorded by phase name (its revert undid them). */
static void forget_steps(lua_State *L, int self, const char *name) {
  int steps;
  lua_getiuservalue(L, self, UV_STATE);
  if (lua_getfield(L, -1, "steps") != LUA_TTABLE) { lua_pop(L, 2); return; }
  steps = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, steps) != 0) {
    int mine = 0;
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "phase");
      mine = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (mine) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, steps);   /* clearing an existing field: allowed during lua_next */
    }
  }
  lua_pop(L, 2);
}

/* Pushes the event line of the ledger at self. */
static void push_event(lua_State *L, int self, const char *phase, const char *event, int fidx) {
  ledger_push_event(L, ledger_info(L, self, "ticket"), phase, event, fidx);
}

/*
** Records the outcome of phase name (its entry already updated) with the event `event`
** and the fields table at fidx. When the store cannot take the new state (a full disk:
** issue 9, item 2) and kept the one before, the phase's entry on the store still says
** `running`: the event then goes to the audit log alone, with unrecorded="why", so that
** the next run and `relua status` can say what happened, and a structured error is raised:
** {code="unrecorded", exit=1, phase=, outcome=event, cause=the store's message, logged=}.
** Any other error is raised as it is.
*/
static void record_outcome(lua_State *L, Ledger *lg, const char *name, const char *event,
                           int fidx) {
  int64_t before = lg->version;
  int logged, st, c;
  const char *cause, *line;
  size_t len;
  fidx = lua_absindex(L, fidx);
  push_event(L, 1, name, event, fidx);                     /* [line] */
  st = ledger_store_state(L, 1, -1);                       /* never runs Lua: no hook */
  if (st == 0) {
    lua_pop(L, 1);
    return;
  }
  if (st < 0) luaL_error(L, "ledger: cannot record the state: %s", lua_tostring(L, -1));
  /* a conflict, a lost lock, or the state written after all (only the log failed) */
  if (st != RELUA_STORE_ERROR || lg->version != before) ledger_raise_store(L, 1, st);
  c = lua_gettop(L);                                       /* [line, cause] */
  cause = lua_tostring(L, c);
  if (cause == NULL) cause = "the store failed";
  lua_pushstring(L, cause);
  lua_setfield(L, fidx, "unrecorded");
  push_event(L, 1, name, event, fidx);                     /* [line, cause, line'] */
  line = lua_tolstring(L, -1, &len);
  logged = lg->s->ops->append(lg->s, L, lg->lk, ledger_info(L, 1, "ticket"), line, len, 1) ==
           RELUA_STORE_OK;
  lua_settop(L, c);
  lua_createtable(L, 0, 8);
  lua_pushfstring(L, "phase %s %s, but relua could not record it: %s", name,
                  strcmp(event, "done") == 0 ? "finished" :
                  strcmp(event, "reverted") == 0 ? "was reverted" :
                  strcmp(event, "revert-failed") == 0 ? "failed to revert" : event, cause);
  lua_setfield(L, -2, "message");
  lua_pushliteral(L, "unrecorded");
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "exit");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "phase");
  lua_pushstring(L, event);
  lua_setfield(L, -2, "outcome");
  lua_pushvalue(L, c);
  lua_setfield(L, -2, "cause");
  lua_pushboolean(L, logged);
  lua_setfield(L, -2, "logged");
  lua_getfield(L, fidx, "msg");                            /* what the phase failed with */
  lua_setfield(L, -2, "reason");
  relua_error_mark(L);
  lua_error(L);
}

/*
** lg:run(plan, r [, mode [, from]]) -> true | false, phase, rc, message, error
** plan: {name=, fn=} items. mode "run" (default): the plan lists the recorded phases in
** order; the run starts where the record says (the first phase not done, or `from` when
** every phase before it is done); the phases before are logged `skipped`; each phase from
** there is marked running, called as fn(r) under lua_pcall and recorded done or failed
** (rc: the error's rc, 130/143 when interrupted, else 1; with its failure record); the first
** failure halts. Any `skip` in the plan is ignored. mode "revert": the plan lists phases
** to undo; only those recorded done, failed or running are (fn: the revert; nil is logged
** `no-revert`); success marks the phase `reverted` and forgets its steps; a failure is
** logged `revert-failed` and halts.
*/
int ledger_run(lua_State *L) {
  Ledger *lg = ledger_check(L, 1);
  int revert, phases, base;
  const char *from;
  lua_Integer i, n, start = 1;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  revert = strcmp(luaL_optstring(L, 4, "run"), "revert") == 0;
  from = luaL_optstring(L, 5, NULL);
  lua_settop(L, 5);
  push_phases(L, 1);                                       /* [lg, plan, r, mode, from, phases] */
  phases = 6;
  n = (lua_Integer)luaL_len(L, 2);
  if (!revert) {
    if (n != (lua_Integer)lua_rawlen(L, phases))
      return luaL_error(L, "ledger: the plan has %d phases, the ticket records %d",
                        (int)n, (int)lua_rawlen(L, phases));
    for (i = 1; i <= n; i++) {
      int same;
      lua_rawgeti(L, 2, i);
      luaL_argcheck(L, lua_istable(L, -1), 2, "plan items must be tables");
      lua_getfield(L, -1, "name");
      lua_rawgeti(L, phases, i);
      lua_getfield(L, -1, "name");
      same = lua_rawequal(L, -1, -3);
      if (!same)
        return luaL_error(L, "ledger: plan item %d is %s, the ticket records phase %s here",
                          (int)i, luaL_tolstring(L, -3, NULL), lua_tostring(L, -2));
      lua_pop(L, 4);
    }
    start = start_of(L, phases, from);
    if (start < 0) return luaL_error(L, "ledger: %s", lua_tostring(L, -2));
    if (start == 0) start = n + 1;                         /* all done */
  }
  if (relua_mkdir_p(ledger_info(L, 1, "out")) != 0)         /* the phases' output files */
    return relua_raise(L, 1, "store", "cannot create the output folder %s: %s",
                       ledger_info(L, 1, "out"), strerror(errno));
  base = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    const char *name, *out = NULL;
    int item, entry, status;
    off_t out_from = 0;
    double t0;
    lua_settop(L, base);
    lua_rawgeti(L, 2, i);                                  /* [..., item] */
    item = lua_gettop(L);
    luaL_argcheck(L, lua_istable(L, item), 2, "plan items must be tables");
    lua_getfield(L, item, "name");
    name = lua_tostring(L, -1);
    luaL_argcheck(L, name != NULL, 2, "plan item without a name");
    if (lg->interrupted) {  /* Ctrl-C while the previous phase was being recorded */
      lg->interrupted = 0;
      ledger_log(L, 1, name, "interrupted", 0);
      lua_pushboolean(L, 0);
      lua_pushstring(L, name);
      lua_pushinteger(L, relua_interrupt_exit());
      lua_pushliteral(L, "interrupted before the phase started");
      lua_pushnil(L);
      return 5;
    }
    push_entry(L, phases, name);                           /* [..., name, entry] */
    entry = lua_gettop(L);
    if (lua_isnil(L, entry)) return luaL_error(L, "ledger: phase %s is not recorded", name);
    if (!revert && i < start) {                            /* done earlier */
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, "done");
      lua_setfield(L, -2, "reason");
      ledger_log(L, 1, name, "skipped", -1);
      continue;
    }
    if (revert) {
      const char *st = status_of(L, entry);
      if (strcmp(st, "done") != 0 && strcmp(st, "failed") != 0 && strcmp(st, "running") != 0) {
        lua_createtable(L, 0, 1);
        lua_pushstring(L, st);
        lua_setfield(L, -2, "reason");
        ledger_log(L, 1, name, "skipped", -1);
        continue;
      }
    } else {
      lua_Integer j;
      for (j = 1; j < i; j++) {     /* a phase runs only when every phase before it is done */
        const char *st;
        lua_rawgeti(L, phases, j);
        st = status_of(L, lua_gettop(L));
        if (strcmp(st, "done") != 0) {
          lua_getfield(L, -1, "name");
          return luaL_error(L, "ledger: phase %s cannot run: phase %s is %s", name,
                            lua_tostring(L, -1), st);
        }
        lua_pop(L, 1);
      }
    }
    lua_getfield(L, item, "fn");                           /* [..., fn] */
    if (lua_isnil(L, -1)) {
      if (!revert) return luaL_error(L, "ledger: phase %s has no function to run", name);
      ledger_log(L, 1, name, "no-revert", 0);
      continue;
    }
    if (!revert) {
      lua_pushfstring(L, "%s/%s.out", ledger_info(L, 1, "out"), name);
      out = lua_tostring(L, -1);
      out_from = out_size(out);
      lua_insert(L, -2);                                   /* [..., out, fn] */
    }
    /* start */
    if (!revert) {
      lua_getfield(L, entry, "attempts");
      lua_pushinteger(L, lua_tointeger(L, -1) + 1);
      lua_setfield(L, entry, "attempts");
      lua_pop(L, 1);
      set_str(L, entry, "status", "running");
      ledger_push_now(L);
      lua_setfield(L, entry, "started");
      set_str(L, entry, "finished", NULL);
      set_str(L, entry, "msg", NULL);
      lua_pushnil(L);
      lua_setfield(L, entry, "rc");
      lua_pushnil(L);
      lua_setfield(L, entry, "failure");
      push_event(L, 1, name, "start", 0);
      ledger_save(L, 1, -1);
      lua_pop(L, 1);
    } else
      ledger_log(L, 1, name, "revert", 0);
    relua_store_crash(L, "phase-start");
    /* call */
    t0 = ledger_monotonic();
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
      lua_pushnumber(L, (double)(long)((ledger_monotonic() - t0) * 1000) / 1000.0);
      lua_setfield(L, -2, "duration");
      relua_store_crash(L, "phase-end");
      if (revert) {
        set_str(L, entry, "status", "reverted");
        lua_pushnil(L);
        lua_setfield(L, entry, "rc");
        set_str(L, entry, "msg", NULL);
        lua_pushnil(L);
        lua_setfield(L, entry, "failure");
        ledger_push_now(L);
        lua_setfield(L, entry, "reverted");
        forget_steps(L, 1, name);
      } else {
        set_str(L, entry, "status", "done");
        lua_pushinteger(L, 0);
        lua_setfield(L, entry, "rc");
        ledger_push_now(L);
        lua_setfield(L, entry, "finished");
      }
      record_outcome(L, lg, name, revert ? "reverted" : "done", -1);
      relua_store_crash(L, "phase-done");
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
      if (msg == NULL) msg = "error";
      msg = relua_mask(L, msg, strlen(msg), NULL);        /* [..., err, msg, masked] */
      lua_createtable(L, 0, 3);
      fields = lua_gettop(L);
      lua_pushinteger(L, rc);
      lua_setfield(L, fields, "rc");
      lua_pushstring(L, msg);
      lua_setfield(L, fields, "msg");
      lua_pushnumber(L, (double)(long)((ledger_monotonic() - t0) * 1000) / 1000.0);
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
        ledger_push_now(L);
        lua_setfield(L, entry, "finished");
        record_failure(L, entry, err, rc, msg, out, out_from);
      }
      record_outcome(L, lg, name, revert ? "revert-failed" : "failed", fields);
      relua_store_crash(L, "phase-failed");
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

/*
** lg:settle(phase, outcome): records phase, recorded `running`, as failed from what the
** audit log says of a run that could not record it (record_outcome: unrecorded=...).
** outcome: {rc=, msg=, cause=}. The caller holds the ticket's lock, so the run that marked
** the phase running is gone; a phase in any other status is refused. Logged
** event=settled with rc, msg and cause.
*/
int ledger_settle(lua_State *L) {
  Ledger *lg = ledger_check(L, 1);
  const char *name = luaL_checkstring(L, 2), *msg, *cause;
  lua_Integer rc;
  int phases, entry, f;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_getfield(L, 3, "rc");
  rc = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 1;
  lua_getfield(L, 3, "msg");
  msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "the phase failed";
  lua_getfield(L, 3, "cause");
  cause = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "the store failed";
  push_phases(L, 1);
  phases = lua_gettop(L);
  push_entry(L, phases, name);                             /* [.., phases, entry] */
  entry = lua_gettop(L);
  if (lua_isnil(L, entry)) return luaL_error(L, "ledger: phase %s is not recorded", name);
  if (strcmp(status_of(L, entry), "running") != 0)
    return luaL_error(L, "ledger: lg:settle: phase %s is recorded %s, not running", name,
                      status_of(L, entry));
  msg = relua_mask(L, msg, strlen(msg), NULL);
  set_str(L, entry, "status", "failed");
  lua_pushinteger(L, rc);
  lua_setfield(L, entry, "rc");
  set_str(L, entry, "msg", msg);
  ledger_push_now(L);
  lua_setfield(L, entry, "finished");
  lua_createtable(L, 0, 4);
  f = lua_gettop(L);
  lua_pushinteger(L, rc);
  lua_setfield(L, f, "rc");
  lua_pushstring(L, msg);
  lua_setfield(L, f, "message");
  lua_pushliteral(L, "unrecorded");
  lua_setfield(L, f, "code");
  relua_mask(L, cause, strlen(cause), NULL);
  lua_pushfstring(L, "the run could not record this failure when it happened: %s", lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_setfield(L, f, "hint");
  lua_setfield(L, entry, "failure");
  lua_createtable(L, 0, 3);                                /* the event's fields */
  lua_pushinteger(L, rc);
  lua_setfield(L, -2, "rc");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "msg");
  lua_pushstring(L, cause);
  lua_setfield(L, -2, "cause");
  push_event(L, 1, name, "settled", lua_gettop(L));
  ledger_save(L, 1, -1);
  ledger_raise_deferred(L, lg);
  return 0;
}
