/*
** git.c: relua.core.git, libgit2 1.5 for Lua. Thin: each function wraps a libgit2 call and
** reports what happened; policy (credentials from the environment, ensure-semantics for
** tags, version sorting, turning a rejected push into an error) is Lua in lib/relua/git.lua.
**
** Lifetimes: a Repository is a boxed git_repository* ("relua.git.Repository") with one
** close function for close/__gc/__close; a Walk (revision walk) keeps its repository in a
** user value. Temporary libgit2 objects taken inside a call live in a Hold userdata, so a
** Lua error (out of memory while building a result) cannot leak them: its __gc frees them.
**
** Callbacks never run Lua: they write into a Net box (credentials handed out, progress,
** the server's messages, per-ref push statuses), return a negative code to abort, and the
** error is reported after libgit2 returns, once everything held has been freed.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/stream.h>

#include "relua.h"

#define REPO_MT "relua.git.Repository"
#define WALK_MT "relua.git.Walk"
#define HOLD_MT "relua.git.Hold"
#define NET_MT "relua.git.Net"

/* ---------------------------------------------------------------- results */

static const char *code_name(int err) {
  switch (err) {
    case GIT_ENOTFOUND: return "ENOTFOUND";
    case GIT_EEXISTS: return "EEXISTS";
    case GIT_EAMBIGUOUS: return "EAMBIGUOUS";
    case GIT_EBAREREPO: return "EBAREREPO";
    case GIT_EUNBORNBRANCH: return "EUNBORNBRANCH";
    case GIT_EUNMERGED: return "EUNMERGED";
    case GIT_ENONFASTFORWARD: return "ENONFASTFORWARD";
    case GIT_EINVALIDSPEC: return "EINVALIDSPEC";
    case GIT_ECONFLICT: return "ECONFLICT";
    case GIT_ELOCKED: return "ELOCKED";
    case GIT_EMODIFIED: return "EMODIFIED";
    case GIT_EAUTH: return "EAUTH";
    case GIT_ECERTIFICATE: return "ECERTIFICATE";
    case GIT_EPEEL: return "EPEEL";
    case GIT_EEOF: return "EEOF";
    case GIT_EINVALID: return "EINVALID";
    case GIT_EUNCOMMITTED: return "EUNCOMMITTED";
    case GIT_EMERGECONFLICT: return "EMERGECONFLICT";
    case GIT_EOWNER: return "EOWNER";
    default: {
      const git_error *e = git_error_last();
      if (e != NULL && (e->klass == GIT_ERROR_NET || e->klass == GIT_ERROR_HTTP ||
                        e->klass == GIT_ERROR_SSL || e->klass == GIT_ERROR_SSH))
        return "ENET";
      return "EGIT";
    }
  }
}

static const char *last_message(void) {
  const git_error *e = git_error_last();
  return e != NULL && e->message != NULL ? e->message : "unknown libgit2 error";
}

/* nil, "PREFIX: libgit2's message", code. */
static int gfail(lua_State *L, int err, const char *fmt, ...) {
  va_list ap;
  const char *code = code_name(err);
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, "%s: %s", lua_tostring(L, -1), last_message());
  lua_remove(L, -2);
  lua_pushstring(L, code);
  return 3;
}

static void push_oid(lua_State *L, const git_oid *oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, oid);
  lua_pushstring(L, hex);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- holding */

enum { H_OBJ = 1, H_REF, H_WALK, H_DIFF, H_INDEX, H_STATUS, H_REMOTE, H_REFLOG,
       H_REFITER, H_BRANCHITER, H_ODB, H_DIR, H_FD, H_SIG, H_STRARRAY, H_TREE, H_MEM };

#define HOLD_SLOTS 32  /* the loose tag scan holds one per folder level (at most 17) */

typedef struct Hold {
  int n;
  struct { int kind; void *p; } s[HOLD_SLOTS];
  git_strarray sa;  /* the one strarray a call may hold (H_STRARRAY) */
} Hold;

static void free_one(Hold *h, int kind, void *p) {
  switch (kind) {
    case H_OBJ: git_object_free(p); break;
    case H_TREE: git_tree_free(p); break;
    case H_REF: git_reference_free(p); break;
    case H_WALK: git_revwalk_free(p); break;
    case H_DIFF: git_diff_free(p); break;
    case H_INDEX: git_index_free(p); break;
    case H_STATUS: git_status_list_free(p); break;
    case H_REMOTE: git_remote_free(p); break;
    case H_REFLOG: git_reflog_free(p); break;
    case H_REFITER: git_reference_iterator_free(p); break;
    case H_BRANCHITER: git_branch_iterator_free(p); break;
    case H_ODB: git_odb_free(p); break;
    case H_DIR: closedir(p); break;
    case H_FD: close((int)((intptr_t)p - 1)); break;
    case H_SIG: git_signature_free(p); break;
    case H_STRARRAY: git_strarray_dispose(&h->sa); break;
    case H_MEM: free(p); break;
    default: break;
  }
}

static void hold_free(Hold *h) {
  while (h->n > 0) {
    h->n--;
    free_one(h, h->s[h->n].kind, h->s[h->n].p);
  }
}

static int hold_gc(lua_State *L) {
  hold_free((Hold *)luaL_checkudata(L, 1, HOLD_MT));
  return 0;
}

/* Pushes a new, empty Hold. */
static Hold *hold_new(lua_State *L) {
  Hold *h = (Hold *)lua_newuserdatauv(L, sizeof(Hold), 0);
  memset(h, 0, sizeof *h);
  luaL_setmetatable(L, HOLD_MT);
  return h;
}

/* Takes ownership of p (NULL is ignored). */
static void *hold(Hold *h, int kind, void *p) {
  if (p == NULL && kind != H_STRARRAY) return p;
  if (h->n == HOLD_SLOTS) {  /* a bug in this file, not a user error */
    free_one(h, kind, p);
    abort();
  }
  h->s[h->n].kind = kind;
  h->s[h->n].p = p;
  h->n++;
  return p;
}

/* Frees the most recently held object early (e.g. one per loop iteration). */
static void hold_drop(Hold *h) {
  if (h->n > 0) {
    h->n--;
    free_one(h, h->s[h->n].kind, h->s[h->n].p);
  }
}

/* The same failures, after freeing what the call holds (h may be NULL). */
static int hgfail(lua_State *L, Hold *h, int err, const char *fmt, ...) {
  va_list ap;
  const char *code = code_name(err);
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, "%s: %s", lua_tostring(L, -1), last_message());
  lua_remove(L, -2);
  lua_pushstring(L, code);
  if (h != NULL) hold_free(h);
  return 3;
}

static int hfail(lua_State *L, Hold *h, const char *code, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushstring(L, code);
  if (h != NULL) hold_free(h);
  return 3;
}

/* An optional table argument. */
static void opt_table(lua_State *L, int idx) {
  if (!lua_isnoneornil(L, idx)) luaL_checktype(L, idx, LUA_TTABLE);
}

/* ---------------------------------------------------------------- repository */

typedef struct Repo {
  git_repository *repo;
  char where[1024];  /* for messages: the work tree, else the git folder, no trailing '/' */
} Repo;

static Repo *check_repo(lua_State *L, int idx) {
  Repo *r = (Repo *)luaL_checkudata(L, idx, REPO_MT);
  if (r->repo == NULL) luaL_error(L, "git: the repository is closed");
  return r;
}

/* Where the repository is, for messages: the work tree, else the git folder. */
static const char *repo_where(Repo *r) {
  if (r->where[0] == '\0') {
    const char *wd = git_repository_workdir(r->repo);
    size_t n;
    snprintf(r->where, sizeof r->where, "%s", wd != NULL ? wd : git_repository_path(r->repo));
    n = strlen(r->where);
    if (n > 1 && r->where[n - 1] == '/') r->where[n - 1] = '\0';
  }
  return r->where;
}

static int repo_close(lua_State *L) {
  Repo *r = (Repo *)luaL_checkudata(L, 1, REPO_MT);
  if (r->repo != NULL) {
    git_repository_free(r->repo);
    r->repo = NULL;
  }
  return 0;
}

static int repo_tostring(lua_State *L) {
  Repo *r = (Repo *)luaL_checkudata(L, 1, REPO_MT);
  if (r->repo == NULL) lua_pushliteral(L, "git.Repository (closed)");
  else lua_pushfstring(L, "git.Repository (%s)", repo_where(r));
  return 1;
}

static Repo *repo_box(lua_State *L) {
  Repo *r = (Repo *)lua_newuserdatauv(L, sizeof(Repo), 0);
  r->repo = NULL;
  r->where[0] = '\0';
  luaL_setmetatable(L, REPO_MT);
  return r;
}

static int open_common(lua_State *L, const char *what, unsigned int flags) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  Repo *r;
  int err;
  if (stat(path, &st) != 0) return relua_oserror(L, what, path);
  r = repo_box(L);
  err = git_repository_open_ext(&r->repo, path, flags, NULL);
  if (err == GIT_ENOTFOUND)
    return relua_fail(L, "ENOTFOUND", "%s: not a git repository: %s", what, path);
  if (err < 0) return gfail(L, err, "%s: %s", what, path);
  return 1;
}

/* git.open(path) -> Repository | nil, msg, code */
static int l_open(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  return open_common(L, "git.open", GIT_REPOSITORY_OPEN_NO_SEARCH);
}

/* git.discover(path) -> Repository: the repository holding path (searching upwards). */
static int l_discover(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  return open_common(L, "git.discover", 0);
}

/* git.init(path [, bare]) -> Repository */
static int l_init(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  const char *path = luaL_checkstring(L, 1);
  int bare = lua_toboolean(L, 2);
  Repo *r = repo_box(L);
  int err = git_repository_init(&r->repo, path, (unsigned)bare);
  if (err < 0) return gfail(L, err, "git.init: %s", path);
  return 1;
}

static int repo_path(lua_State *L) {
  Repo *r = check_repo(L, 1);
  lua_pushstring(L, git_repository_path(r->repo));
  return 1;
}

static int repo_workdir(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *wd = git_repository_workdir(r->repo);
  if (wd == NULL) lua_pushnil(L);
  else lua_pushstring(L, wd);
  return 1;
}

static int repo_is_bare(lua_State *L) {
  Repo *r = check_repo(L, 1);
  lua_pushboolean(L, git_repository_is_bare(r->repo));
  return 1;
}

/* Looks up spec and peels it to a commit; on failure pushes nil, msg, code (3 values). */
static int lookup_commit(lua_State *L, Repo *r, Hold *h, const char *what, const char *spec,
                         git_commit **out) {
  git_object *obj = NULL, *peeled = NULL;
  int err = git_revparse_single(&obj, r->repo, spec);
  if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC || err == GIT_EAMBIGUOUS) {
    relua_fail(L, err == GIT_EAMBIGUOUS ? "EAMBIGUOUS" : "ENOTFOUND",
               "%s: unknown revision '%s' in %s", what, spec, repo_where(r));
    return -1;
  }
  if (err < 0) {
    gfail(L, err, "%s: revision '%s'", what, spec);
    return -1;
  }
  hold(h, H_OBJ, obj);
  err = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
  if (err < 0) {
    relua_fail(L, "EPEEL", "%s: '%s' is a %s, not a commit", what, spec,
               git_object_type2string(git_object_type(obj)));
    return -1;
  }
  hold(h, H_OBJ, peeled);
  *out = (git_commit *)peeled;
  return 0;
}

/* repo:head() -> {id=, branch=, detached=, unborn=, ref=} */
static int repo_head(lua_State *L) {
  Repo *r = check_repo(L, 1);
  Hold *h = hold_new(L);
  git_reference *ref = NULL;
  int err = git_repository_head(&ref, r->repo);
  if (err == GIT_EUNBORNBRANCH) {
    git_reference *sym = NULL;
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "unborn");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "detached");
    if (git_reference_lookup(&sym, r->repo, "HEAD") == 0) {
      hold(h, H_REF, sym);
      if (git_reference_type(sym) == GIT_REFERENCE_SYMBOLIC) {
        const char *t = git_reference_symbolic_target(sym);
        lua_pushstring(L, t);
        lua_setfield(L, -2, "ref");
        if (strncmp(t, "refs/heads/", 11) == 0) {
          lua_pushstring(L, t + 11);
          lua_setfield(L, -2, "branch");
        }
      }
    }
    hold_free(h);
    return 1;
  }
  if (err < 0) {
    gfail(L, err, "git.head: %s", repo_where(r));
    hold_free(h);
    return 3;
  }
  hold(h, H_REF, ref);
  lua_createtable(L, 0, 4);
  push_oid(L, git_reference_target(ref));
  lua_setfield(L, -2, "id");
  lua_pushboolean(L, git_repository_head_detached(r->repo) == 1);
  lua_setfield(L, -2, "detached");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "unborn");
  if (git_reference_is_branch(ref)) {
    lua_pushstring(L, git_reference_name(ref));
    lua_setfield(L, -2, "ref");
    lua_pushstring(L, git_reference_name(ref) + 11);
    lua_setfield(L, -2, "branch");
  }
  hold_free(h);
  return 1;
}

/* repo:rev_parse(spec) -> id (peeled to a commit when it names one), type | nil, msg, code */
static int repo_rev_parse(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *spec = luaL_checkstring(L, 2);
  Hold *h = hold_new(L);
  git_object *obj = NULL, *peeled = NULL;
  int err = git_revparse_single(&obj, r->repo, spec);
  if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC || err == GIT_EAMBIGUOUS) {
    relua_fail(L, err == GIT_EAMBIGUOUS ? "EAMBIGUOUS" : "ENOTFOUND",
               "git.rev_parse: unknown revision '%s' in %s", spec, repo_where(r));
    return 3;
  }
  if (err < 0) return hgfail(L, h, err, "git.rev_parse: '%s'", spec);
  hold(h, H_OBJ, obj);
  if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0) {
    hold(h, H_OBJ, peeled);
    push_oid(L, git_object_id(peeled));
    lua_pushliteral(L, "commit");
  } else {
    git_error_clear();
    push_oid(L, git_object_id(obj));
    lua_pushstring(L, git_object_type2string(git_object_type(obj)));
  }
  hold_free(h);
  return 2;
}

/* ---------------------------------------------------------------- status */

static const char *index_status(unsigned int s) {
  if (s & GIT_STATUS_INDEX_NEW) return "new";
  if (s & GIT_STATUS_INDEX_MODIFIED) return "modified";
  if (s & GIT_STATUS_INDEX_DELETED) return "deleted";
  if (s & GIT_STATUS_INDEX_RENAMED) return "renamed";
  if (s & GIT_STATUS_INDEX_TYPECHANGE) return "typechange";
  return NULL;
}

static const char *worktree_status(unsigned int s) {
  if (s & GIT_STATUS_WT_NEW) return "untracked";
  if (s & GIT_STATUS_WT_MODIFIED) return "modified";
  if (s & GIT_STATUS_WT_DELETED) return "deleted";
  if (s & GIT_STATUS_WT_RENAMED) return "renamed";
  if (s & GIT_STATUS_WT_TYPECHANGE) return "typechange";
  if (s & GIT_STATUS_WT_UNREADABLE) return "unreadable";
  if (s & GIT_STATUS_IGNORED) return "ignored";
  return NULL;
}

/* repo:status([untracked=true [, ignored=false]]) -> {{path=, index=, worktree=, conflicted=}} */
static int repo_status(lua_State *L) {
  Repo *r = check_repo(L, 1);
  int untracked = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  int ignored = lua_toboolean(L, 3);
  git_status_options opts;
  git_status_list *list = NULL;
  Hold *h = NULL;
  size_t i, n;
  int err;
  git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
  if (git_repository_is_bare(r->repo))
    return hfail(L, h, "EBAREREPO", "git.status: %s is a bare repository (no work tree)",
                      repo_where(r));
  h = hold_new(L);
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
  if (untracked)
    opts.flags |= GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS;
  if (ignored) opts.flags |= GIT_STATUS_OPT_INCLUDE_IGNORED;
  err = git_status_list_new(&list, r->repo, &opts);
  if (err < 0) return hgfail(L, h, err, "git.status: %s", repo_where(r));
  hold(h, H_STATUS, list);
  n = git_status_list_entrycount(list);
  lua_createtable(L, (int)n, 0);  /* [hold, list] */
  for (i = 0; i < n; i++) {
    const git_status_entry *e = git_status_byindex(list, i);
    const git_diff_delta *d = e->index_to_workdir != NULL ? e->index_to_workdir : e->head_to_index;
    const char *s;
    if (e->status == GIT_STATUS_CURRENT || d == NULL) continue;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, d->new_file.path != NULL ? d->new_file.path : d->old_file.path);
    lua_setfield(L, -2, "path");
    if ((s = index_status(e->status)) != NULL) {
      lua_pushstring(L, s);
      lua_setfield(L, -2, "index");
    }
    if ((s = worktree_status(e->status)) != NULL) {
      lua_pushstring(L, s);
      lua_setfield(L, -2, "worktree");
    }
    if (e->status & GIT_STATUS_CONFLICTED) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "conflicted");
    }
    if (d->old_file.path != NULL && d->new_file.path != NULL &&
        strcmp(d->old_file.path, d->new_file.path) != 0) {
      lua_pushstring(L, d->old_file.path);
      lua_setfield(L, -2, "old_path");
    }
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  }
  hold_free(h);
  return 1;
}

/* repo:state() -> "none" | "merge" | "revert" | "cherry-pick" | "bisect" | "rebase" | ... */
static int repo_state(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *s;
  switch (git_repository_state(r->repo)) {
    case GIT_REPOSITORY_STATE_NONE: s = "none"; break;
    case GIT_REPOSITORY_STATE_MERGE: s = "merge"; break;
    case GIT_REPOSITORY_STATE_REVERT:
    case GIT_REPOSITORY_STATE_REVERT_SEQUENCE: s = "revert"; break;
    case GIT_REPOSITORY_STATE_CHERRYPICK:
    case GIT_REPOSITORY_STATE_CHERRYPICK_SEQUENCE: s = "cherry-pick"; break;
    case GIT_REPOSITORY_STATE_BISECT: s = "bisect"; break;
    case GIT_REPOSITORY_STATE_REBASE:
    case GIT_REPOSITORY_STATE_REBASE_INTERACTIVE:
    case GIT_REPOSITORY_STATE_REBASE_MERGE: s = "rebase"; break;
    case GIT_REPOSITORY_STATE_APPLY_MAILBOX:
    case GIT_REPOSITORY_STATE_APPLY_MAILBOX_OR_REBASE: s = "am"; break;
    default: s = "unknown"; break;
  }
  lua_pushstring(L, s);
  return 1;
}

/* ---------------------------------------------------------------- commits */

static void push_sig(lua_State *L, const git_signature *s) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, s->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, s->email);
  lua_setfield(L, -2, "email");
  lua_pushinteger(L, (lua_Integer)s->when.time);
  lua_setfield(L, -2, "time");
  lua_pushinteger(L, s->when.offset);
  lua_setfield(L, -2, "offset");
}

/* {id=, parents={...}, summary=, message=, author={...}, committer={...}, time=} */
static void push_commit(lua_State *L, git_commit *c) {
  unsigned int i, np = git_commit_parentcount(c);
  const char *summary = git_commit_summary(c);
  lua_createtable(L, 0, 7);
  push_oid(L, git_commit_id(c));
  lua_setfield(L, -2, "id");
  lua_createtable(L, (int)np, 0);
  for (i = 0; i < np; i++) {
    push_oid(L, git_commit_parent_id(c, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "parents");
  lua_pushstring(L, summary != NULL ? summary : "");
  lua_setfield(L, -2, "summary");
  lua_pushstring(L, git_commit_message(c));
  lua_setfield(L, -2, "message");
  push_sig(L, git_commit_author(c));
  lua_setfield(L, -2, "author");
  push_sig(L, git_commit_committer(c));
  lua_setfield(L, -2, "committer");
  lua_pushinteger(L, (lua_Integer)git_commit_time(c));
  lua_setfield(L, -2, "time");
}

typedef struct Walk {
  git_revwalk *w;
  git_commit *cur;  /* the commit being pushed to Lua, freed on the next step or in __gc */
} Walk;

static int walk_gc(lua_State *L) {
  Walk *wk = (Walk *)luaL_checkudata(L, 1, WALK_MT);
  if (wk->cur != NULL) git_commit_free(wk->cur);
  if (wk->w != NULL) git_revwalk_free(wk->w);
  wk->cur = NULL;
  wk->w = NULL;
  return 0;
}

/* The iterator: the next commit table, or nil at the end. */
static int walk_next(lua_State *L) {
  Walk *wk = (Walk *)luaL_checkudata(L, lua_upvalueindex(1), WALK_MT);
  Repo *r;
  git_oid oid;
  int err;
  if (wk->cur != NULL) {
    git_commit_free(wk->cur);
    wk->cur = NULL;
  }
  if (wk->w == NULL) return 0;
  lua_getiuservalue(L, lua_upvalueindex(1), 1);  /* [repo] */
  r = (Repo *)luaL_checkudata(L, -1, REPO_MT);
  if (r->repo == NULL) return luaL_error(L, "git.walk: the repository is closed");
  err = git_revwalk_next(&oid, wk->w);
  if (err == GIT_ITEROVER) {
    git_revwalk_free(wk->w);
    wk->w = NULL;
    return 0;
  }
  if (err == 0) err = git_commit_lookup(&wk->cur, r->repo, &oid);
  if (err < 0) return luaL_error(L, "git.walk: %s", last_message());
  push_commit(L, wk->cur);
  return 1;
}

/* Pushes onto walk what a spec names: "A..B", "^A", "A", or a table {include..., exclude=}. */
static int walk_push_spec(git_revwalk *w, const char *spec) {
  if (strstr(spec, "..") != NULL) return git_revwalk_push_range(w, spec);
  if (spec[0] == '^') {
    git_oid oid;
    git_object *obj = NULL;
    int err = git_revparse_single(&obj, git_revwalk_repository(w), spec + 1);
    if (err < 0) return err;
    git_oid_cpy(&oid, git_object_id(obj));
    git_object_free(obj);
    return git_revwalk_hide(w, &oid);
  } else {
    git_oid oid;
    git_object *obj = NULL;
    int err = git_revparse_single(&obj, git_revwalk_repository(w), spec);
    if (err < 0) return err;
    git_oid_cpy(&oid, git_object_id(obj));
    git_object_free(obj);
    return git_revwalk_push(w, &oid);
  }
}

/*
** The order of a walk: "date" (default: git log's, newest first by commit date, produced
** as it goes), "time" (strictly by commit time: reads the whole range first) or "topo"
** (parents after all their children); reverse=true flips it.
*/
static unsigned int sort_mode(lua_State *L, int opts) {
  unsigned int mode = GIT_SORT_NONE;
  if (lua_istable(L, opts)) {
    const char *s;
    lua_getfield(L, opts, "sort");
    s = luaL_optstring(L, -1, "date");
    if (strcmp(s, "topo") == 0) mode = GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME;
    else if (strcmp(s, "time") == 0) mode = GIT_SORT_TIME;
    else if (strcmp(s, "date") != 0)
      luaL_error(L, "git.walk: sort must be \"date\", \"time\" or \"topo\", not \"%s\"", s);
    lua_pop(L, 1);
    lua_getfield(L, opts, "reverse");
    if (lua_toboolean(L, -1)) mode |= GIT_SORT_REVERSE;
    lua_pop(L, 1);
  }
  return mode;
}

/*
** repo:walk(spec [, {sort=, reverse=, first_parent=}]) -> iterator | nil, msg, code
** spec: "A..B" (reachable from B, not from A), "REV", or a list of those ("^REV" hides).
*/
static int repo_walk(lua_State *L) {
  Repo *r = check_repo(L, 1);
  int first_parent = 0, err = 0;
  const char *bad = NULL;
  unsigned int mode;
  Walk *wk;
  luaL_argexpected(L, lua_type(L, 2) == LUA_TSTRING || lua_istable(L, 2), 2, "string or table");
  opt_table(L, 3);
  mode = sort_mode(L, 3);
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "first_parent");
    first_parent = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (lua_istable(L, 2)) {  /* check the whole list before acquiring anything */
    lua_Integer i, n = luaL_len(L, 2);
    for (i = 1; i <= n; i++)
      if (lua_geti(L, 2, i) != LUA_TSTRING) luaL_argerror(L, 2, "a list of strings");
    lua_pop(L, (int)n);
  }
  wk = (Walk *)lua_newuserdatauv(L, sizeof(Walk), 1);  /* [.., walk] */
  wk->w = NULL;
  wk->cur = NULL;
  luaL_setmetatable(L, WALK_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);  /* the walk keeps its repository alive */
  err = git_revwalk_new(&wk->w, r->repo);
  if (err == 0) err = git_revwalk_sorting(wk->w, mode);
  if (err == 0 && first_parent) err = git_revwalk_simplify_first_parent(wk->w);
  if (err == 0) {
    if (lua_type(L, 2) == LUA_TSTRING) {
      bad = lua_tostring(L, 2);
      err = walk_push_spec(wk->w, bad);
    } else {
      lua_Integer i, n = luaL_len(L, 2);
      for (i = 1; i <= n && err == 0; i++) {
        lua_geti(L, 2, i);
        bad = lua_tostring(L, -1);  /* still referenced by the table */
        lua_pop(L, 1);
        err = walk_push_spec(wk->w, bad);
      }
    }
  }
  if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC || err == GIT_EAMBIGUOUS)
    return relua_fail(L, "ENOTFOUND", "git.walk: unknown revision in '%s' in %s", bad,
                      repo_where(r));
  if (err < 0) return gfail(L, err, "git.walk: '%s'", bad != NULL ? bad : "?");
  lua_pushcclosure(L, walk_next, 1);
  return 1;
}

/*
** repo:first_reachable(from, set) -> id, distance | nil
** Walks from `from` newest first and returns the first commit whose id is a key of `set`,
** with the number of commits walked before it. The latest-tag search builds the set.
*/
static int repo_first_reachable(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *from = luaL_checkstring(L, 2);
  Hold *h = NULL;
  git_revwalk *w = NULL;
  git_commit *c = NULL;
  git_oid oid;
  lua_Integer distance = 0;
  int err;
  luaL_checktype(L, 3, LUA_TTABLE);
  h = hold_new(L);
  if (lookup_commit(L, r, h, "git.first_reachable", from, &c) < 0) return hold_free(h), 3;
  err = git_revwalk_new(&w, r->repo);
  if (err < 0) return hgfail(L, h, err, "git.first_reachable");
  hold(h, H_WALK, w);
  git_revwalk_sorting(w, GIT_SORT_NONE);  /* git log's order, newest first; incremental (TIME walks everything first) */
  err = git_revwalk_push(w, git_commit_id(c));
  if (err < 0) return hgfail(L, h, err, "git.first_reachable: %s", from);
  while ((err = git_revwalk_next(&oid, w)) == 0) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &oid);
    lua_pushlstring(L, hex, GIT_OID_HEXSZ);
    if (lua_rawget(L, 3) != LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushlstring(L, hex, GIT_OID_HEXSZ);
      lua_pushinteger(L, distance);
      hold_free(h);
      return 2;
    }
    lua_pop(L, 1);
    distance++;
  }
  if (err != GIT_ITEROVER) return hgfail(L, h, err, "git.first_reachable: %s", from);
  hold_free(h);
  lua_pushnil(L);
  return 1;
}

/* repo:merge_base(a, b) -> id | nil, msg, "ENOTFOUND" */
static int repo_merge_base(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *a = luaL_checkstring(L, 2), *b = luaL_checkstring(L, 3);
  Hold *h = hold_new(L);
  git_commit *ca, *cb;
  git_oid out;
  int err;
  if (lookup_commit(L, r, h, "git.merge_base", a, &ca) < 0) return hold_free(h), 3;
  if (lookup_commit(L, r, h, "git.merge_base", b, &cb) < 0) return hold_free(h), 3;
  err = git_merge_base(&out, r->repo, git_commit_id(ca), git_commit_id(cb));
  if (err == GIT_ENOTFOUND)
    return hfail(L, h, "ENOTFOUND", "git.merge_base: '%s' and '%s' have no common ancestor", a, b);
  if (err < 0) return hgfail(L, h, err, "git.merge_base: %s, %s", a, b);
  push_oid(L, &out);
  hold_free(h);
  return 1;
}

/* repo:is_ancestor(a, b) -> boolean: is a reachable from b (or equal to it) */
static int repo_is_ancestor(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *a = luaL_checkstring(L, 2), *b = luaL_checkstring(L, 3);
  Hold *h = hold_new(L);
  git_commit *ca, *cb;
  int res;
  if (lookup_commit(L, r, h, "git.is_ancestor", a, &ca) < 0) return hold_free(h), 3;
  if (lookup_commit(L, r, h, "git.is_ancestor", b, &cb) < 0) return hold_free(h), 3;
  if (git_oid_equal(git_commit_id(ca), git_commit_id(cb))) res = 1;
  else res = git_graph_descendant_of(r->repo, git_commit_id(cb), git_commit_id(ca));
  if (res < 0) return hgfail(L, h, res, "git.is_ancestor: %s, %s", a, b);
  hold_free(h);
  lua_pushboolean(L, res);
  return 1;
}

/* repo:changed_paths(a, b) -> {{path=, status=, old_path=}} between the trees of a and b */
static int repo_changed_paths(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *a = luaL_checkstring(L, 2), *b = luaL_checkstring(L, 3);
  Hold *h = hold_new(L);
  git_commit *ca, *cb;
  git_tree *ta = NULL, *tb = NULL;
  git_diff *diff = NULL;
  git_diff_options opts;
  size_t i, n;
  int err;
  git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
  if (lookup_commit(L, r, h, "git.changed_paths", a, &ca) < 0) return hold_free(h), 3;
  if (lookup_commit(L, r, h, "git.changed_paths", b, &cb) < 0) return hold_free(h), 3;
  if ((err = git_commit_tree(&ta, ca)) < 0) return hgfail(L, h, err, "git.changed_paths: %s", a);
  hold(h, H_TREE, ta);
  if ((err = git_commit_tree(&tb, cb)) < 0) return hgfail(L, h, err, "git.changed_paths: %s", b);
  hold(h, H_TREE, tb);
  err = git_diff_tree_to_tree(&diff, r->repo, ta, tb, &opts);
  if (err < 0) return hgfail(L, h, err, "git.changed_paths: %s..%s", a, b);
  hold(h, H_DIFF, diff);
  n = git_diff_num_deltas(diff);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    const git_diff_delta *d = git_diff_get_delta(diff, i);
    const char *s;
    switch (d->status) {
      case GIT_DELTA_ADDED: s = "added"; break;
      case GIT_DELTA_DELETED: s = "deleted"; break;
      case GIT_DELTA_RENAMED: s = "renamed"; break;
      case GIT_DELTA_COPIED: s = "copied"; break;
      case GIT_DELTA_TYPECHANGE: s = "typechange"; break;
      default: s = "modified"; break;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, d->new_file.path != NULL ? d->new_file.path : d->old_file.path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, s);
    lua_setfield(L, -2, "status");
    if (d->old_file.path != NULL && d->new_file.path != NULL &&
        strcmp(d->old_file.path, d->new_file.path) != 0) {
      lua_pushstring(L, d->old_file.path);
      lua_setfield(L, -2, "old_path");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  hold_free(h);
  return 1;
}

/* A signature from a {name=, email=} table at idx, else the repository's configured one. */
static int get_sig(lua_State *L, Repo *r, Hold *h, int idx, git_signature **out) {
  int err;
  idx = lua_absindex(L, idx);
  if (lua_istable(L, idx)) {
    const char *name, *email;
    lua_getfield(L, idx, "name");
    lua_getfield(L, idx, "email");
    lua_getfield(L, idx, "time");  /* [.., name, email, time] */
    name = lua_tostring(L, -3);
    email = lua_tostring(L, -2);
    if (name == NULL || email == NULL)
      luaL_error(L, "git: a signature needs string fields 'name' and 'email'");
    if (lua_isinteger(L, -1))  /* seconds since the epoch, UTC */
      err = git_signature_new(out, name, email, (git_time_t)lua_tointeger(L, -1), 0);
    else if (!lua_isnil(L, -1))
      return luaL_error(L, "git: a signature's 'time' must be an integer (seconds since the epoch)");
    else
      err = git_signature_now(out, name, email);  /* the strings stay in the table */
    lua_pop(L, 3);
  } else
    err = git_signature_default(out, r->repo);
  if (err == 0) hold(h, H_SIG, *out);
  return err;
}

/* The author and committer from the opts table at idx ({author=, committer=}): each a
** signature table, else the repository's configured one; the committer defaults to the author. */
static int get_sigs(lua_State *L, Repo *r, Hold *h, int idx, git_signature **author,
                    git_signature **committer) {
  int err;
  idx = lua_absindex(L, idx);
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "author");
    lua_getfield(L, idx, "committer");  /* [.., author, committer] */
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  if ((err = get_sig(L, r, h, -2, author)) == 0)
    err = get_sig(L, r, h, lua_istable(L, -1) ? -1 : -2, committer);
  lua_pop(L, 2);
  return err;
}

/* Makes path relative to the work tree when it is an absolute path inside it. */
static const char *relpath(Repo *r, const char *path) {
  const char *wd = git_repository_workdir(r->repo);
  size_t n = wd != NULL ? strlen(wd) : 0;
  if (n > 0 && strncmp(path, wd, n) == 0) return path + n;
  return path;
}

/*
** repo:commit(message, paths|nil, {author=, committer=, allow_empty=}) -> id | nil, msg, code
** Stages paths (added or, when gone from the work tree, removed), then commits the index
** on HEAD. The index is written only after the commit exists.
*/
/* Stages a folder as `git add DIR` does: its files (.gitignore honoured), and removes the
   entries under it whose files are gone. */
static int add_dir(git_index *index, const char *dir) {
  char *path = (char *)dir;  /* git_strarray's strings are not const */
  git_strarray spec = {&path, 1};
  int err = git_index_add_all(index, &spec, GIT_INDEX_ADD_DEFAULT, NULL, NULL);
  if (err == 0) err = git_index_update_all(index, &spec, NULL, NULL);
  return err;
}

static int repo_commit(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *message = luaL_checkstring(L, 2);
  int allow_empty = 0, err, nparents = 0;
  Hold *h = NULL;
  git_index *index = NULL;
  git_oid tree_oid, head_oid, commit_oid;
  git_tree *tree = NULL;
  git_commit *parent = NULL;
  git_signature *author = NULL, *committer = NULL;
  const char *wd = git_repository_workdir(r->repo);
  opt_table(L, 3);
  opt_table(L, 4);
  if (lua_istable(L, 3)) {
    lua_Integer i, n = luaL_len(L, 3);
    for (i = 1; i <= n; i++) {
      if (lua_geti(L, 3, i) != LUA_TSTRING) luaL_argerror(L, 3, "a list of paths");
      lua_pop(L, 1);
    }
  }
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "allow_empty");
    allow_empty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (wd == NULL)
    return hfail(L, h, "EBAREREPO", "git.commit: %s is a bare repository", repo_where(r));
  h = hold_new(L);  /* [.., hold] */
  if ((err = get_sigs(L, r, h, 4, &author, &committer)) < 0)
    return hgfail(L, h, err, "git.commit: no author (set user.name and user.email, or "
                         "GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL)");
  if ((err = git_repository_index(&index, r->repo)) < 0) return hgfail(L, h, err, "git.commit: index");
  hold(h, H_INDEX, index);
  if (lua_istable(L, 3)) {
    lua_Integer i, n = luaL_len(L, 3);
    luaL_Buffer b;
    for (i = 1; i <= n && err == 0; i++) {
      struct stat st;
      const char *p;
      lua_geti(L, 3, i);
      p = relpath(r, lua_tostring(L, -1));
      luaL_buffinit(L, &b);
      luaL_addstring(&b, wd);
      luaL_addstring(&b, p);
      luaL_pushresult(&b);  /* [.., path, fullpath] */
      if (lstat(lua_tostring(L, -1), &st) == 0)
        err = S_ISDIR(st.st_mode) ? add_dir(index, p) : git_index_add_bypath(index, p);
      else if (errno == ENOENT) {  /* a file or a whole folder gone from the work tree */
        err = git_index_remove_bypath(index, p);
        if (err == 0) err = git_index_remove_directory(index, p, 0);
      } else {
        int e = errno;
        git_index_read(index, 1);
        errno = e;
        relua_oserror(L, "git.commit", lua_tostring(L, -1));
        hold_free(h);
        return 3;
      }
      if (err < 0) {
        gfail(L, err, "git.commit: %s", p);
        git_index_read(index, 1);  /* forget what was staged in memory */
        hold_free(h);
        return 3;
      }
      lua_pop(L, 2);
    }
  }
  if ((err = git_index_write_tree(&tree_oid, index)) < 0) goto fail;
  err = git_reference_name_to_id(&head_oid, r->repo, "HEAD");
  if (err == 0) {
    if ((err = git_commit_lookup(&parent, r->repo, &head_oid)) < 0) goto fail;
    hold(h, H_OBJ, parent);
    nparents = 1;
    if (!allow_empty && git_oid_equal(&tree_oid, git_commit_tree_id(parent))) {
      git_index_read(index, 1);
      hold_free(h);
      return hfail(L, h, "EEMPTY", "git.commit: nothing to commit in %s", repo_where(r));
    }
  } else if (err != GIT_ENOTFOUND && err != GIT_EUNBORNBRANCH)
    goto fail;
  if ((err = git_tree_lookup(&tree, r->repo, &tree_oid)) < 0) goto fail;
  hold(h, H_TREE, tree);
  err = git_commit_create(&commit_oid, r->repo, "HEAD", author, committer, NULL, message, tree,
                          (size_t)nparents, (const git_commit **)&parent);
  if (err < 0) goto fail;
  if ((err = git_index_write(index)) < 0) {
    gfail(L, err, "git.commit: committed %s but could not write the index",
          git_oid_tostr_s(&commit_oid));
    hold_free(h);
    return 3;
  }
  push_oid(L, &commit_oid);
  hold_free(h);
  return 1;
fail:
  gfail(L, err, "git.commit: %s", repo_where(r));
  git_index_read(index, 1);
  hold_free(h);
  return 3;
}

#define MAX_PARENTS 8  /* each parent holds two objects */

/*
** repo:commit_tree(message, parents, {tree=, author=, committer=}) -> id | nil, msg, code
** Writes a commit object and nothing else (git commit-tree): no reference, index or work
** tree changes, so it works in a bare repository. tree: a revision naming a tree or a
** commit; default the first parent's tree, or the empty tree when there is no parent.
*/
static int repo_commit_tree(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *message = luaL_checkstring(L, 2);
  const git_commit *parents[MAX_PARENTS];
  lua_Integer i, np;
  Hold *h;
  git_tree *tree = NULL;
  git_signature *author = NULL, *committer = NULL;
  git_oid oid;
  int err;
  luaL_checktype(L, 3, LUA_TTABLE);
  opt_table(L, 4);
  np = luaL_len(L, 3);
  luaL_argcheck(L, np <= MAX_PARENTS, 3, "at most 8 parents");
  for (i = 1; i <= np; i++) {
    if (lua_geti(L, 3, i) != LUA_TSTRING) luaL_argerror(L, 3, "a list of revisions");
    lua_pop(L, 1);
  }
  h = hold_new(L);  /* [.., hold] */
  for (i = 1; i <= np; i++) {
    git_commit *c;
    lua_geti(L, 3, i);  /* [.., hold, rev] */
    if (lookup_commit(L, r, h, "git.commit_tree", lua_tostring(L, -1), &c) < 0)
      return hold_free(h), 3;
    lua_pop(L, 1);
    parents[i - 1] = c;
  }
  if (lua_istable(L, 4)) lua_getfield(L, 4, "tree");
  else lua_pushnil(L);  /* [.., hold, tree] */
  if (!lua_isnil(L, -1)) {
    const char *spec = luaL_checkstring(L, -1);
    git_object *obj = NULL, *peeled = NULL;
    err = git_revparse_single(&obj, r->repo, spec);
    if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC || err == GIT_EAMBIGUOUS)
      return hfail(L, h, "ENOTFOUND", "git.commit_tree: unknown tree '%s' in %s", spec, repo_where(r));
    if (err < 0) return hgfail(L, h, err, "git.commit_tree: tree '%s'", spec);
    hold(h, H_OBJ, obj);
    if (git_object_peel(&peeled, obj, GIT_OBJECT_TREE) < 0)
      return hfail(L, h, "EPEEL", "git.commit_tree: '%s' is a %s, not a tree", spec,
                   git_object_type2string(git_object_type(obj)));
    hold(h, H_OBJ, peeled);
    tree = (git_tree *)peeled;
  } else if (np > 0) {
    if ((err = git_commit_tree(&tree, parents[0])) < 0) return hgfail(L, h, err, "git.commit_tree");
    hold(h, H_TREE, tree);
  } else {
    git_treebuilder *tb = NULL;
    git_oid empty;
    if ((err = git_treebuilder_new(&tb, r->repo, NULL)) < 0) return hgfail(L, h, err, "git.commit_tree");
    err = git_treebuilder_write(&empty, tb);
    git_treebuilder_free(tb);
    if (err == 0) err = git_tree_lookup(&tree, r->repo, &empty);
    if (err < 0) return hgfail(L, h, err, "git.commit_tree: the empty tree");
    hold(h, H_TREE, tree);
  }
  lua_pop(L, 1);  /* [.., hold] */
  if ((err = get_sigs(L, r, h, 4, &author, &committer)) < 0)
    return hgfail(L, h, err, "git.commit_tree: no author (set user.name and user.email, or "
                             "pass opts.author)");
  err = git_commit_create(&oid, r->repo, NULL, author, committer, NULL, message, tree,
                          (size_t)np, parents);
  if (err < 0) return hgfail(L, h, err, "git.commit_tree: %s", repo_where(r));
  push_oid(L, &oid);
  hold_free(h);
  return 1;
}

/* repo:reset(rev, "soft"|"mixed"|"hard") -> true | nil, msg, code */
static int repo_reset(lua_State *L) {
  static const char *const modes[] = {"soft", "mixed", "hard", NULL};
  static const git_reset_t types[] = {GIT_RESET_SOFT, GIT_RESET_MIXED, GIT_RESET_HARD};
  Repo *r = check_repo(L, 1);
  const char *spec = luaL_checkstring(L, 2);
  int mode = luaL_checkoption(L, 3, "mixed", modes);
  Hold *h = hold_new(L);
  git_commit *c;
  int err;
  if (lookup_commit(L, r, h, "git.reset", spec, &c) < 0) return hold_free(h), 3;
  err = git_reset(r->repo, (git_object *)c, types[mode], NULL);
  if (err < 0) return hgfail(L, h, err, "git.reset --%s %s", modes[mode], spec);
  hold_free(h);
  lua_pushboolean(L, 1);
  return 1;
}

/* Checkout conflicts are collected into a list of paths (no Lua in the callback). */
typedef struct Conflicts {
  char paths[1024];
  size_t len;
  int count;
} Conflicts;

static int cb_checkout_notify(git_checkout_notify_t why, const char *path,
                              const git_diff_file *baseline, const git_diff_file *target,
                              const git_diff_file *workdir, void *payload) {
  Conflicts *c = (Conflicts *)payload;
  size_t n = strlen(path);
  (void)why; (void)baseline; (void)target; (void)workdir;
  c->count++;
  if (c->len + n + 3 < sizeof c->paths) {
    if (c->len > 0) {
      memcpy(c->paths + c->len, ", ", 2);
      c->len += 2;
    }
    memcpy(c->paths + c->len, path, n);
    c->len += n;
    c->paths[c->len] = '\0';
  }
  return 0;
}

/* repo:checkout(branch [, force]) -> true | nil, msg, code: switch HEAD to a local branch */
static int repo_checkout(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  int force = lua_toboolean(L, 3), err;
  Hold *h = hold_new(L);
  git_reference *ref = NULL;
  git_object *target = NULL;
  git_checkout_options opts;
  Conflicts *conf;
  git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
  err = git_branch_lookup(&ref, r->repo, name, GIT_BRANCH_LOCAL);
  if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC)
    return hfail(L, h, "ENOTFOUND", "git.checkout: no local branch '%s' in %s", name,
                      repo_where(r));
  if (err < 0) return hgfail(L, h, err, "git.checkout: %s", name);
  hold(h, H_REF, ref);
  if ((err = git_reference_peel(&target, ref, GIT_OBJECT_COMMIT)) < 0)
    return hgfail(L, h, err, "git.checkout: %s", name);
  hold(h, H_OBJ, target);
  conf = (Conflicts *)lua_newuserdatauv(L, sizeof(Conflicts), 0);
  memset(conf, 0, sizeof *conf);
  opts.checkout_strategy = force ? GIT_CHECKOUT_FORCE : GIT_CHECKOUT_SAFE;
  opts.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT;
  opts.notify_cb = cb_checkout_notify;
  opts.notify_payload = conf;
  err = git_checkout_tree(r->repo, target, &opts);
  if (err == GIT_ECONFLICT || (err < 0 && conf->count > 0)) {
    relua_fail(L, "ECONFLICT",
               "git.checkout %s: local changes would be overwritten: %s (commit or stash them, "
               "or check out with force)", name, conf->count > 0 ? conf->paths : last_message());
    hold_free(h);
    return 3;
  }
  if (err < 0) return hgfail(L, h, err, "git.checkout: %s", name);
  if ((err = git_repository_set_head(r->repo, git_reference_name(ref))) < 0)
    return hgfail(L, h, err, "git.checkout: %s", name);
  hold_free(h);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- references */

static int valid_refname(const char *name) {
  int valid = 0;
  if (git_reference_name_is_valid(&valid, name) < 0) return 0;
  return valid;
}

/* Resolves a short or full name to a reference; pushes nil, msg, code on failure. */
static int find_ref(lua_State *L, Repo *r, Hold *h, const char *what, const char *name,
                    git_reference **out) {
  int err;
  if (strncmp(name, "refs/", 5) == 0 || strcmp(name, "HEAD") == 0) {
    if (!valid_refname(name)) {
      relua_fail(L, "EINVALIDSPEC", "%s: invalid reference name '%s'", what, name);
      return -1;
    }
    err = git_reference_lookup(out, r->repo, name);
  } else
    err = git_reference_dwim(out, r->repo, name);
  if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC) {
    relua_fail(L, "ENOTFOUND", "%s: no reference '%s' in %s", what, name, repo_where(r));
    return -1;
  }
  if (err < 0) {
    gfail(L, err, "%s: %s", what, name);
    return -1;
  }
  hold(h, H_REF, *out);
  return 0;
}

/* Sets commit= (the commit a reference or tag leads to) on the table on top. */
static void set_peeled(lua_State *L, git_reference *ref) {
  git_object *obj = NULL;
  const git_oid *peel = git_reference_target_peel(ref);
  if (peel != NULL) {
    push_oid(L, peel);
    lua_setfield(L, -2, "commit");
    return;
  }
  if (git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) == 0) {
    const git_oid *id = git_object_id(obj);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, id);
    git_object_free(obj);
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "commit");
  } else
    git_error_clear();
}

/* repo:ref(name) -> {name=, id=, commit=, symbolic=} | nil, msg, code */
static int repo_ref(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  Hold *h = hold_new(L);
  git_reference *ref = NULL;
  if (find_ref(L, r, h, "git.ref", name, &ref) < 0) return hold_free(h), 3;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, git_reference_name(ref));
  lua_setfield(L, -2, "name");
  if (git_reference_type(ref) == GIT_REFERENCE_SYMBOLIC) {
    git_reference *res = NULL;
    lua_pushstring(L, git_reference_symbolic_target(ref));
    lua_setfield(L, -2, "symbolic");
    if (git_reference_resolve(&res, ref) == 0) {
      hold(h, H_REF, res);
      ref = res;
    } else
      git_error_clear();
  }
  if (git_reference_type(ref) == GIT_REFERENCE_DIRECT) {
    push_oid(L, git_reference_target(ref));
    lua_setfield(L, -2, "id");
    set_peeled(L, ref);
  }
  hold_free(h);
  return 1;
}

/* repo:branches("local"|"remote"|"all") -> {{name=, ref=, id=, remote=, head=}} */
static int repo_branches(lua_State *L) {
  static const char *const kinds[] = {"local", "remote", "all", NULL};
  static const git_branch_t types[] = {GIT_BRANCH_LOCAL, GIT_BRANCH_REMOTE, GIT_BRANCH_ALL};
  Repo *r = check_repo(L, 1);
  int kind = luaL_checkoption(L, 2, "local", kinds), err;
  Hold *h = hold_new(L);
  git_branch_iterator *it = NULL;
  git_reference *ref;
  git_branch_t type;
  lua_Integer n = 0;
  if ((err = git_branch_iterator_new(&it, r->repo, types[kind])) < 0)
    return hgfail(L, h, err, "git.branches: %s", repo_where(r));
  hold(h, H_BRANCHITER, it);
  lua_newtable(L);
  while ((err = git_branch_next(&ref, &type, it)) == 0) {
    const char *short_name = NULL;
    hold(h, H_REF, ref);
    if (git_reference_type(ref) == GIT_REFERENCE_DIRECT &&
        git_branch_name(&short_name, ref) == 0) {
      lua_createtable(L, 0, 5);
      lua_pushstring(L, short_name);
      lua_setfield(L, -2, "name");
      lua_pushstring(L, git_reference_name(ref));
      lua_setfield(L, -2, "ref");
      push_oid(L, git_reference_target(ref));
      lua_setfield(L, -2, "id");
      lua_pushboolean(L, type == GIT_BRANCH_REMOTE);
      lua_setfield(L, -2, "remote");
      lua_pushboolean(L, type == GIT_BRANCH_LOCAL && git_branch_is_head(ref) == 1);
      lua_setfield(L, -2, "head");
      lua_rawseti(L, -2, ++n);
    }
    hold_drop(h);
  }
  if (err != GIT_ITEROVER) return hgfail(L, h, err, "git.branches: %s", repo_where(r));
  hold_free(h);
  return 1;
}

/* repo:branch_create(name, rev [, force]) -> id | nil, msg, code */
static int repo_branch_create(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *spec = luaL_optstring(L, 3, "HEAD");
  int force = lua_toboolean(L, 4), valid = 0, err;
  Hold *h = NULL;
  git_commit *c;
  git_reference *ref = NULL;
  if (git_branch_name_is_valid(&valid, name) < 0 || !valid)
    return hfail(L, h, "EINVALIDSPEC", "git.branch_create: invalid branch name '%s'", name);
  h = hold_new(L);
  if (lookup_commit(L, r, h, "git.branch_create", spec, &c) < 0) return hold_free(h), 3;
  err = git_branch_create(&ref, r->repo, name, c, force);
  if (err == GIT_EEXISTS)
    return hfail(L, h, "EEXISTS", "git.branch_create: branch '%s' already exists in %s", name,
                      repo_where(r));
  if (err < 0) return hgfail(L, h, err, "git.branch_create: %s", name);
  hold(h, H_REF, ref);
  push_oid(L, git_reference_target(ref));
  hold_free(h);
  return 1;
}

/* repo:branch_delete(name [, remote]) -> true | false (no such branch) | nil, msg, code */
static int repo_branch_delete(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  int remote = lua_toboolean(L, 3), err;
  Hold *h = hold_new(L);
  git_reference *ref = NULL;
  err = git_branch_lookup(&ref, r->repo, name, remote ? GIT_BRANCH_REMOTE : GIT_BRANCH_LOCAL);
  if (err == GIT_EINVALIDSPEC)
    return hfail(L, h, "EINVALIDSPEC", "git.branch_delete: invalid branch name '%s'", name);
  if (err == GIT_ENOTFOUND) {
    git_error_clear();
    lua_pushboolean(L, 0);
    return 1;
  }
  if (err < 0) return hgfail(L, h, err, "git.branch_delete: %s", name);
  hold(h, H_REF, ref);
  if (!remote && git_branch_is_head(ref) == 1)
    return hfail(L, h, "EBUSY", "git.branch_delete: '%s' is the current branch of %s; "
                      "check out another branch first", name, repo_where(r));
  if ((err = git_branch_delete(ref)) < 0) return hgfail(L, h, err, "git.branch_delete: %s", name);
  hold_free(h);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** Tag listings read the files backend directly: loose refs under refs/tags (which override
** packed ones) and the packed-refs file, whose "^" lines give the commit an annotated tag
** leads to. libgit2 1.5's reference iterator parses and copies every packed reference on
** each call (10 ms for 10,000 tags); this reads only what matches. Anything unusual (a
** symbolic tag, a tag of a tag without a "^" line) goes through libgit2.
*/
enum { SCAN_LIST = 0, SCAN_MAP = 1, SCAN_NAMES = 2 };

typedef struct TagScan {
  lua_State *L;
  Repo *r;
  Hold *h;
  git_odb *odb;
  const char *pattern;  /* "refs/tags/GLOB", matched with fnmatch(3) without FNM_PATHNAME */
  int seen;             /* stack index: names found loose */
  int out;              /* stack index: the result (list or map) */
  int map;              /* SCAN_LIST {{name=, ...}}, SCAN_MAP {commit = name | {names}}, SCAN_NAMES {names} */
  int direct;           /* the id in hand is known not to be a tag object */
  lua_Integer n;
  lua_Integer loose;    /* loose refs seen: none means no packed one is hidden */
} TagScan;

/* Where id leads: its commit (peeling tags), and whether it is an annotated tag. */
static int scan_commit(TagScan *s, const git_oid *id, const git_oid *peel, git_oid *commit,
                       int *annotated) {
  size_t len;
  git_object_t type = GIT_OBJECT_INVALID;
  *annotated = 0;
  if (peel != NULL) {
    *annotated = 1;
    git_oid_cpy(commit, peel);
    return 0;
  }
  if (s->direct && s->map == SCAN_MAP) {  /* a tree or blob id in the map is harmless: no walk meets it */
    git_oid_cpy(commit, id);
    return 0;
  }
  if (git_odb_read_header(&len, &type, s->odb, id) < 0) {
    git_error_clear();
    return -1;
  }
  if (type == GIT_OBJECT_COMMIT) {
    git_oid_cpy(commit, id);
    return 0;
  }
  if (type == GIT_OBJECT_TAG) {
    git_object *obj = NULL, *peeled = NULL;
    int err;
    *annotated = 1;
    if (git_object_lookup(&obj, s->r->repo, id, GIT_OBJECT_TAG) < 0) {
      git_error_clear();
      return -1;
    }
    err = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
    git_object_free(obj);
    if (err < 0) {
      git_error_clear();
      return -1;
    }
    git_oid_cpy(commit, git_object_id(peeled));
    git_object_free(peeled);
    return 0;
  }
  return -1;
}

/* One tag found: into the list ({name=, ref=, id=, commit=, annotated=}) or the map. */
static void scan_emit(TagScan *s, const char *refname, const git_oid *id, const git_oid *peel) {
  lua_State *L = s->L;
  git_oid commit;
  int annotated, has_commit;
  if (s->map == SCAN_NAMES) {  /* names only: no object is read */
    lua_pushstring(L, refname + 10);
    lua_rawseti(L, s->out, ++s->n);
    return;
  }
  has_commit = scan_commit(s, id, peel, &commit, &annotated) == 0;
  if (s->map == SCAN_MAP) {
    char hex[GIT_OID_HEXSZ + 1];
    if (!has_commit) return;
    git_oid_tostr(hex, sizeof hex, &commit);
    lua_pushlstring(L, hex, GIT_OID_HEXSZ);  /* [.., id] */
    lua_pushvalue(L, -1);
    switch (lua_rawget(L, s->out)) {        /* [.., id, old] */
      case LUA_TNIL:
        lua_pop(L, 1);
        lua_pushstring(L, refname + 10);
        lua_rawset(L, s->out);
        break;
      case LUA_TSTRING:  /* a second tag on this commit: a list */
        lua_createtable(L, 2, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, refname + 10);
        lua_rawseti(L, -2, 2);
        lua_rawset(L, s->out);
        break;
      default:
        lua_pushstring(L, refname + 10);
        lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
        lua_pop(L, 2);
        break;
    }
    s->n++;
    return;
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, refname + 10);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, refname);
  lua_setfield(L, -2, "ref");
  push_oid(L, id);
  lua_setfield(L, -2, "id");
  if (has_commit) {
    push_oid(L, &commit);
    lua_setfield(L, -2, "commit");
  }
  lua_pushboolean(L, annotated);
  lua_setfield(L, -2, "annotated");
  lua_rawseti(L, s->out, ++s->n);
}

/* Reads a small file (a loose ref) into buf; its length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (fd < 0) return -1;
  n = read(fd, buf, size - 1);
  close(fd);
  if (n >= 0) buf[n] = '\0';
  return n;
}

/* Loose refs below dir (path: ".../refs/tags/x", name: "refs/tags/x"). */
static int scan_loose(TagScan *s, char *path, size_t plen, char *name, size_t nlen, int depth) {
  DIR *d;
  struct dirent *e;
  if (depth > 16) return 0;
  d = opendir(path);
  if (d == NULL) return 0;
  hold(s->h, H_DIR, d);
  while ((e = readdir(d)) != NULL) {
    size_t el = strlen(e->d_name);
    struct stat st;
    if (e->d_name[0] == '.' || plen + el + 2 >= PATH_MAX || nlen + el + 2 >= PATH_MAX) continue;
    if (el > 5 && strcmp(e->d_name + el - 5, ".lock") == 0) continue;
    path[plen] = '/';
    memcpy(path + plen + 1, e->d_name, el + 1);
    name[nlen] = '/';
    memcpy(name + nlen + 1, e->d_name, el + 1);
    if (stat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      scan_loose(s, path, plen + 1 + el, name, nlen + 1 + el, depth + 1);
    } else if (S_ISREG(st.st_mode) && valid_refname(name)) {
      char buf[512];
      git_oid oid;
      ssize_t n;
      lua_pushstring(s->L, name);  /* seen, whether it matches or not: it hides packed */
      lua_pushboolean(s->L, 1);
      lua_rawset(s->L, s->seen);
      s->loose++;
      if (fnmatch(s->pattern, name, 0) != 0) continue;
      n = read_small(path, buf, sizeof buf);
      if (n >= GIT_OID_HEXSZ && git_oid_fromstrn(&oid, buf, GIT_OID_HEXSZ) == 0 &&
          (n == GIT_OID_HEXSZ || buf[GIT_OID_HEXSZ] == '\n'))
        scan_emit(s, name, &oid, NULL);
      else if (git_reference_name_to_id(&oid, s->r->repo, name) == 0)  /* symbolic */
        scan_emit(s, name, &oid, NULL);
      else
        git_error_clear();
    }
  }
  path[plen] = '\0';
  name[nlen] = '\0';
  hold_drop(s->h);  /* closedir */
  return 0;
}

/*
** Reads the packed-refs file into memory the Hold owns (freed as soon as the scan ends, so
** what comes after can reuse it); pushes a placeholder so the stack keeps its shape.
*/
static int read_packed(TagScan *s, const char *file, char **out, size_t *len) {
  static char empty[1];
  struct stat st;
  char *buf;
  size_t size, got = 0;
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  lua_pushnil(s->L);  /* [.., placeholder] */
  if (fd < 0) {
    if (errno != ENOENT) return -1;
    *out = empty;
    *len = 0;
    return 0;
  }
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  size = (size_t)st.st_size;
  if ((buf = (char *)malloc(size + 1)) == NULL) {
    close(fd);
    errno = ENOMEM;
    return -1;
  }
  hold(s->h, H_MEM, buf);
  hold(s->h, H_FD, (void *)(intptr_t)(fd + 1));
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  hold_drop(s->h);  /* close */
  buf[got] = '\0';
  *out = buf;
  *len = got;
  return 0;
}

/* The packed-refs file: "<id> <name>" lines, each optionally followed by "^<peeled id>". */
static void scan_packed(TagScan *s, char *buf, size_t got) {
  lua_State *L = s->L;
  char *p = buf, *end = buf + got;
  int fully_peeled = 0;
  {  /* "# pack-refs with: peeled fully-peeled sorted": every tag object has its "^" line */
    char *nl = memchr(buf, '\n', got);
    if (nl != NULL && strncmp(buf, "# pack-refs with:", 17) == 0) {
      *nl = '\0';
      fully_peeled = strstr(buf, " fully-peeled") != NULL;
      *nl = '\n';
    }
  }
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p)), *name;
    git_oid id, peel;
    int has_peel = 0;
    if (nl == NULL) break;  /* a partial last line */
    *nl = '\0';
    if (*p == '#' || *p == '^' || nl - p < GIT_OID_HEXSZ + 2 || p[GIT_OID_HEXSZ] != ' ') {
      p = nl + 1;
      continue;
    }
    name = p + GIT_OID_HEXSZ + 1;
    if (strncmp(name, "refs/tags/", 10) == 0 && fnmatch(s->pattern, name, 0) == 0 &&
        git_oid_fromstrn(&id, p, GIT_OID_HEXSZ) == 0) {
      char *next = nl + 1;
      if (next < end && *next == '^' && end - next > GIT_OID_HEXSZ &&
          git_oid_fromstrn(&peel, next + 1, GIT_OID_HEXSZ) == 0)
        has_peel = 1;
      s->direct = fully_peeled;
      if (s->loose == 0) scan_emit(s, name, &id, has_peel ? &peel : NULL);  /* no garbage name */
      else {
        lua_pushstring(L, name);
        if (lua_rawget(L, s->seen) == LUA_TNIL) scan_emit(s, name, &id, has_peel ? &peel : NULL);
        lua_pop(L, 1);
      }
      s->direct = 0;
    }
    p = nl + 1;
  }
}

/* Pushes the tags matching glob as a list, or as a map; returns the count or -1. */
static int scan_tags(lua_State *L, Repo *r, Hold *h, const char *glob, int map, const char *what) {
  TagScan s;
  char path[PATH_MAX], name[PATH_MAX];
  const char *common = git_repository_commondir(r->repo);
  char *packed;
  size_t packed_len;
  int err, hint;
  memset(&s, 0, sizeof s);
  s.L = L;
  s.r = r;
  s.h = h;
  s.map = map;
  if ((err = git_repository_odb(&s.odb, r->repo)) < 0) {
    hgfail(L, h, err, "%s: %s", what, repo_where(r));
    return -1;
  }
  hold(h, H_ODB, s.odb);
  s.pattern = lua_pushfstring(L, "refs/tags/%s", glob);  /* [.., pattern] */
  lua_pushfstring(L, "%spacked-refs", common);            /* [.., pattern, file] */
  if (read_packed(&s, lua_tostring(L, -1), &packed, &packed_len) < 0) {
    relua_oserror(L, what, lua_tostring(L, -1));
    hold_free(h);
    return -1;
  }                                                        /* [.., pattern, file, buf] */
  lua_newtable(L);                                         /* [.., pattern, file, buf, seen] */
  s.seen = lua_gettop(L);
  hint = (int)(packed_len / 64 < 1000000 ? packed_len / 64 : 1000000);  /* ~ one tag a line */
  if (map == SCAN_MAP) lua_createtable(L, 0, hint);
  else if (map == SCAN_NAMES) lua_createtable(L, hint, 0);
  else lua_newtable(L);                                    /* [.., pattern, file, buf, seen, out] */
  s.out = lua_gettop(L);
  snprintf(path, sizeof path, "%srefs/tags", common);
  snprintf(name, sizeof name, "refs/tags");
  scan_loose(&s, path, strlen(path), name, strlen(name), 0);
  scan_packed(&s, packed, packed_len);
  lua_replace(L, s.seen - 3);                              /* [.., out, file, buf, seen] */
  lua_pop(L, 3);                                           /* [.., out] */
  return (int)s.n;
}

/*
** repo:tag_commits([glob]) -> {[commit id] = name | {names...}}, count
** The commits that tags matching glob lead to: what the latest-tag search looks for.
*/
static int repo_tag_commits(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *glob = luaL_optstring(L, 2, "*");
  Hold *h = hold_new(L);
  int n = scan_tags(L, r, h, glob, SCAN_MAP, "git.tag_commits");
  if (n < 0) return 3;
  hold_free(h);
  lua_pushinteger(L, n);
  return 2;
}

/*
** repo:tag_names([glob]) -> {names...}: the names alone (no object read), loose ones first,
** then packed ones in the file's order; the leanest listing of many tags.
*/
static int repo_tag_names(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *glob = luaL_optstring(L, 2, "*");
  Hold *h = hold_new(L);
  if (scan_tags(L, r, h, glob, SCAN_NAMES, "git.tag_names") < 0) return 3;
  hold_free(h);
  return 1;
}

/*
** repo:tags([glob]) -> {{name=, ref=, id=, commit=, annotated=}}: loose ones first, then
** packed ones in the file's order. glob is matched against the whole name after
** refs/tags/ ('*' also crosses '/', like libgit2's and git's tag globs).
*/
static int repo_tags(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *glob = luaL_optstring(L, 2, "*");
  Hold *h = hold_new(L);
  if (scan_tags(L, r, h, glob, SCAN_LIST, "git.tags") < 0) return 3;
  hold_free(h);
  return 1;
}

/*
** repo:tag_create(name, rev, message|nil [, {tagger=}, force]) -> id | nil, msg, code
** An annotated tag when message is given, else a lightweight one. Refuses to move an
** existing tag unless force (EEXISTS).
*/
static int repo_tag_create(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *spec = luaL_checkstring(L, 3);
  const char *message = luaL_optstring(L, 4, NULL);
  int force = lua_toboolean(L, 6), valid = 0, err;
  Hold *h = NULL;
  git_commit *c;
  git_signature *tagger = NULL;
  git_oid oid;
  opt_table(L, 5);
  lua_pushfstring(L, "refs/tags/%s", name);
  valid = valid_refname(lua_tostring(L, -1)) && git_tag_name_is_valid(&valid, name) == 0 && valid;
  lua_pop(L, 1);
  if (!valid) return hfail(L, h, "EINVALIDSPEC", "git.tag: invalid tag name '%s'", name);
  h = hold_new(L);
  if (lookup_commit(L, r, h, "git.tag", spec, &c) < 0) return hold_free(h), 3;
  if (message != NULL) {
    if (lua_istable(L, 5)) lua_getfield(L, 5, "tagger");
    else lua_pushnil(L);
    if ((err = get_sig(L, r, h, -1, &tagger)) < 0)
      return hgfail(L, h, err, "git.tag %s: no tagger (set user.name and user.email)", name);
    lua_pop(L, 1);
    err = git_tag_create(&oid, r->repo, name, (git_object *)c, tagger, message, force);
  } else
    err = git_tag_create_lightweight(&oid, r->repo, name, (git_object *)c, force);
  if (err == GIT_EEXISTS)
    return hfail(L, h, "EEXISTS", "git.tag: tag '%s' already exists in %s", name, repo_where(r));
  if (err < 0) return hgfail(L, h, err, "git.tag: %s", name);
  push_oid(L, &oid);
  hold_free(h);
  return 1;
}

/* repo:pack_refs() -> true | nil, msg, code: moves loose references into packed-refs (git pack-refs --all) */
static int repo_pack_refs(lua_State *L) {
  Repo *r = check_repo(L, 1);
  git_refdb *db = NULL;
  int err = git_repository_refdb(&db, r->repo);
  if (err == 0) {
    err = git_refdb_compress(db);
    git_refdb_free(db);
  }
  if (err < 0) return gfail(L, err, "git.pack_refs: %s", repo_where(r));
  lua_pushboolean(L, 1);
  return 1;
}

/* repo:tag_delete(name) -> true | false (no such tag) | nil, msg, code */
static int repo_tag_delete(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  int err;
  lua_pushfstring(L, "refs/tags/%s", name);
  if (!valid_refname(lua_tostring(L, -1)))
    return relua_fail(L, "EINVALIDSPEC", "git.tag_delete: invalid tag name '%s'", name);
  lua_pop(L, 1);
  err = git_tag_delete(r->repo, name);
  if (err == GIT_ENOTFOUND) {
    git_error_clear();
    lua_pushboolean(L, 0);
    return 1;
  }
  if (err < 0) return gfail(L, err, "git.tag_delete: %s", name);
  lua_pushboolean(L, 1);
  return 1;
}

/* repo:reflog(ref) -> {{old=, new=, message=, name=, email=, time=}} newest first */
static int repo_reflog(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_optstring(L, 2, "HEAD");
  Hold *h = hold_new(L);
  git_reflog *log = NULL;
  size_t i, n;
  int err;
  if (strcmp(name, "HEAD") != 0 && strncmp(name, "refs/", 5) != 0) {
    git_reference *ref = NULL;
    if (find_ref(L, r, h, "git.reflog", name, &ref) < 0) return hold_free(h), 3;
    lua_pushstring(L, git_reference_name(ref));
    name = lua_tostring(L, -1);  /* anchored on the stack */
  } else if (!valid_refname(name))
    return hfail(L, h, "EINVALIDSPEC", "git.reflog: invalid reference name '%s'", name);
  if ((err = git_reflog_read(&log, r->repo, name)) < 0)
    return hgfail(L, h, err, "git.reflog: %s", name);
  hold(h, H_REFLOG, log);
  n = git_reflog_entrycount(log);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    const git_reflog_entry *e = git_reflog_entry_byindex(log, i);
    const git_signature *s = git_reflog_entry_committer(e);
    const char *msg = git_reflog_entry_message(e);
    lua_createtable(L, 0, 6);
    push_oid(L, git_reflog_entry_id_old(e));
    lua_setfield(L, -2, "old");
    push_oid(L, git_reflog_entry_id_new(e));
    lua_setfield(L, -2, "new");
    lua_pushstring(L, msg != NULL ? msg : "");
    lua_setfield(L, -2, "message");
    lua_pushstring(L, s->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, s->email);
    lua_setfield(L, -2, "email");
    lua_pushinteger(L, (lua_Integer)s->when.time);
    lua_setfield(L, -2, "time");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  hold_free(h);
  return 1;
}

/* git.is_valid_ref(name) -> boolean (a full name: refs/heads/x, refs/tags/v1) */
static int l_is_valid_ref(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  lua_pushboolean(L, valid_refname(luaL_checkstring(L, 1)));
  return 1;
}

/* ---------------------------------------------------------------- network: the stream */

/*
** libgit2 1.5 has no network timeout. For http(s) remotes relua registers its own socket
** stream (TLS is layered on top of it by libgit2) whose connect, read and write wait with
** poll(): each gives up after the operation's timeout of silence, and every 100 ms checks
** for Ctrl-C. libgit2's stream registry is process-wide and its constructor has no payload,
** so the timeout of the one network operation running (this host is single-threaded) is a
** file-level variable, set just before the call and cleared right after. SSH remotes keep
** libgit2's own stream: its SSH transport reaches inside that stream for the socket.
*/
static double stream_timeout = 0;  /* seconds of silence allowed; 0: no limit */
static int stream_timed_out = 0;

typedef struct TStream {
  git_stream parent;
  int fd;
  char *host, *port;
  double timeout;
} TStream;

/* Waits for events on the socket; 0, or -1 with the libgit2 error set. */
static int ts_wait(TStream *s, short events, const char *doing) {
  double deadline = s->timeout > 0 ? now() + s->timeout : 0;
  for (;;) {
    struct pollfd p;
    int ms = 100, rc;
    if (relua_interrupted()) {
      git_error_set_str(GIT_ERROR_NET, "interrupted");
      return -1;
    }
    if (deadline > 0) {
      double left = deadline - now();
      if (left <= 0) {
        stream_timed_out = 1;
        git_error_set(GIT_ERROR_NET, "timed out after %g s %s %s:%s", s->timeout, doing,
                      s->host, s->port);
        return -1;
      }
      if (left < 0.1) ms = (int)(left * 1000) + 1;
    }
    p.fd = s->fd;
    p.events = events;
    p.revents = 0;
    rc = poll(&p, 1, ms);
    if (rc > 0) return 0;
    if (rc < 0 && errno != EINTR) {
      git_error_set(GIT_ERROR_OS, "poll: %s", strerror(errno));
      return -1;
    }
  }
}

static int ts_connect(git_stream *st) {
  TStream *s = (TStream *)st;
  struct addrinfo hints, *res = NULL, *ai;
  int rc, last_err = 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(s->host, s->port, &hints, &res);
  if (rc != 0) {
    git_error_set(GIT_ERROR_NET, "cannot resolve host '%s': %s", s->host, gai_strerror(rc));
    return -1;
  }
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    if (fd < 0) {
      last_err = errno;
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      s->fd = fd;
      break;
    }
    if (errno == EINPROGRESS) {
      int soerr = 0;
      socklen_t len = sizeof soerr;
      s->fd = fd;
      if (ts_wait(s, POLLOUT, "connecting to") < 0) {
        close(fd);
        s->fd = -1;
        freeaddrinfo(res);
        return -1;
      }
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) break;
      last_err = soerr != 0 ? soerr : errno;
      s->fd = -1;
    } else
      last_err = errno;
    close(fd);
  }
  freeaddrinfo(res);
  if (s->fd < 0) {
    git_error_set(GIT_ERROR_NET, "cannot connect to %s:%s: %s", s->host, s->port,
                  strerror(last_err));
    return -1;
  }
  return 0;
}

static ssize_t ts_read(git_stream *st, void *data, size_t len) {
  TStream *s = (TStream *)st;
  for (;;) {
    ssize_t n = recv(s->fd, data, len, 0);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (ts_wait(s, POLLIN, "waiting for") < 0) return -1;
    } else if (errno != EINTR) {
      git_error_set(GIT_ERROR_NET, "receiving from %s:%s: %s", s->host, s->port, strerror(errno));
      return -1;
    }
  }
}

static ssize_t ts_write(git_stream *st, const char *data, size_t len, int flags) {
  TStream *s = (TStream *)st;
  size_t done = 0;
  (void)flags;
  while (done < len) {
    ssize_t n = send(s->fd, data + done, len - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += (size_t)n;
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (ts_wait(s, POLLOUT, "sending to") < 0) return -1;
    } else if (errno != EINTR) {
      git_error_set(GIT_ERROR_NET, "sending to %s:%s: %s", s->host, s->port, strerror(errno));
      return -1;
    }
  }
  return (ssize_t)done;
}

static int ts_close(git_stream *st) {
  TStream *s = (TStream *)st;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  return 0;
}

static void ts_free(git_stream *st) {
  TStream *s = (TStream *)st;
  if (s->fd >= 0) close(s->fd);
  free(s->host);
  free(s->port);
  free(s);
}

static int ts_new(git_stream **out, const char *host, const char *port) {
  TStream *s = (TStream *)calloc(1, sizeof(TStream));
  if (s == NULL) {
    git_error_set_oom();
    return -1;
  }
  s->host = strdup(host);
  s->port = strdup(port);
  if (s->host == NULL || s->port == NULL) {
    free(s->host);
    free(s->port);
    free(s);
    git_error_set_oom();
    return -1;
  }
  s->fd = -1;
  s->timeout = stream_timeout;
  s->parent.version = GIT_STREAM_VERSION;
  s->parent.connect = ts_connect;
  s->parent.read = ts_read;
  s->parent.write = ts_write;
  s->parent.close = ts_close;
  s->parent.free = ts_free;
  *out = &s->parent;
  return 0;
}

static int is_http(const char *url) {
  return url != NULL && (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0);
}

/* Around every network call: our stream for http(s) URLs, libgit2's otherwise. */
static void stream_begin(const char *url, double timeout) {
  stream_timed_out = 0;
  if (is_http(url)) {
    git_stream_registration reg;
    memset(&reg, 0, sizeof reg);
    reg.version = GIT_STREAM_VERSION;
    reg.init = ts_new;
    stream_timeout = timeout;
    git_stream_register(GIT_STREAM_STANDARD, &reg);
  }
}

static void stream_end(void) {
  git_stream_register(GIT_STREAM_STANDARD, NULL);
  stream_timeout = 0;
}

/* ---------------------------------------------------------------- network: callbacks */

typedef struct Update {
  char *ref;
  char *status;  /* NULL: accepted */
} Update;

typedef struct Net {
  const char *username, *password, *source;  /* Lua strings anchored in the options table */
  int max_attempts, cred_calls, ssh_calls;
  int progress, printed, phase, received, side_bol;
  double last;
  const char *stop_code;  /* a callback stopped the operation: why (message in stop) */
  char stop[512];
  char side[2048];  /* the server's last messages ("remote: ...") */
  size_t side_len;
  Update *up;
  size_t nup, cap;
} Net;

static void net_clear(Net *n) {
  size_t i;
  for (i = 0; i < n->nup; i++) {
    free(n->up[i].ref);
    free(n->up[i].status);
  }
  free(n->up);
  n->up = NULL;
  n->nup = n->cap = 0;
}

static int net_gc(lua_State *L) {
  net_clear((Net *)luaL_checkudata(L, 1, NET_MT));
  return 0;
}

static int net_stop(Net *n, const char *code, int err, const char *fmt, const char *a,
                    const char *b) {
  snprintf(n->stop, sizeof n->stop, fmt, a, b);
  n->stop_code = code;
  git_error_set_str(GIT_ERROR_CALLBACK, n->stop);
  return err;
}

static int cb_credentials(git_credential **out, const char *url, const char *user_from_url,
                          unsigned int allowed, void *payload) {
  Net *n = (Net *)payload;
  if (allowed & GIT_CREDENTIAL_SSH_KEY) {
    const char *user = user_from_url != NULL ? user_from_url : "git";
    if (++n->ssh_calls > 1)
      return net_stop(n, "EAUTH", GIT_EAUTH,
                      "authentication failed: the SSH agent offered no key that %s accepts for "
                      "user '%s' (ssh-add the key; is SSH_AUTH_SOCK set?)", url, user);
    return git_credential_ssh_key_from_agent(out, user);
  }
  if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
    const char *user = n->username != NULL ? n->username : user_from_url;
    if (n->password == NULL)
      return net_stop(n, "EAUTH", GIT_EAUTH, "authentication required: %s%s",
                      n->source != NULL ? n->source : "no credentials were given", "");
    if (++n->cred_calls > n->max_attempts) {
      char tries[32];
      snprintf(tries, sizeof tries, "%d", n->max_attempts);
      snprintf(n->stop, sizeof n->stop,
               "authentication failed after %s attempts: the server refused the "
               "credentials from %s", tries, n->source != NULL ? n->source : "the options");
      n->stop_code = "EAUTH";
      git_error_set_str(GIT_ERROR_CALLBACK, n->stop);
      return GIT_EAUTH;
    }
    return git_credential_userpass_plaintext_new(out, user != NULL ? user : "git", n->password);
  }
  if (allowed & GIT_CREDENTIAL_USERNAME)
    return git_credential_username_new(out, user_from_url != NULL ? user_from_url : "git");
  return net_stop(n, "EAUTH", GIT_EAUTH, "authentication required for %s: %s", url,
                  "relua offers a user/password (HTTPS) or the SSH agent (SSH) only");
}

static int check_interrupt(Net *n) {
  if (relua_interrupted()) {
    n->stop_code = "interrupted";
    snprintf(n->stop, sizeof n->stop, "interrupted");
    git_error_set_str(GIT_ERROR_CALLBACK, "interrupted");
    return -1;
  }
  return 0;
}

/*
** Progress lines on stderr (only when asked: lib/ asks on a terminal). One line per phase
** (receiving, resolving, writing), redrawn with '\r' at most every 0.1 s and always at 100%;
** the server's side-band text is shown as "remote: " lines.
*/
static void progress_end_line(Net *n) {
  if (n->printed) {
    fputc('\n', stderr);
    n->printed = 0;
  }
}

static void progress_line(Net *n, int phase, const char *what, unsigned a, unsigned b,
                          size_t bytes, int force) {
  double t = now();
  if (!n->progress) return;
  if (phase != n->phase) {
    progress_end_line(n);
    n->phase = phase;
    force = 1;
  }
  if (!force && t - n->last < 0.1) return;
  n->last = t;
  fprintf(stderr, "\r%s: %3u%% (%u/%u)", what, b > 0 ? (unsigned)((100.0 * a) / b) : 100u, a, b);
  if (bytes > 0) fprintf(stderr, ", %.2f MiB", (double)bytes / (1024.0 * 1024.0));
  fflush(stderr);
  n->printed = 1;
}

static int cb_transfer(const git_indexer_progress *p, void *payload) {
  Net *n = (Net *)payload;
  if (check_interrupt(n) < 0) return -1;
  if (p->total_objects == 0) return 0;
  if (p->received_objects < p->total_objects) {
    progress_line(n, 1, "Receiving objects", p->received_objects, p->total_objects,
                  p->received_bytes, 0);
    return 0;
  }
  if (!n->received) {
    n->received = 1;
    progress_line(n, 1, "Receiving objects", p->total_objects, p->total_objects,
                  p->received_bytes, 1);
  }
  if (p->total_deltas > 0)
    progress_line(n, 2, "Resolving deltas", p->indexed_deltas, p->total_deltas, 0,
                  p->indexed_deltas == p->total_deltas);
  return 0;
}

static int cb_push_transfer(unsigned int current, unsigned int total, size_t bytes,
                            void *payload) {
  Net *n = (Net *)payload;
  if (check_interrupt(n) < 0) return -1;
  if (total > 0) progress_line(n, 3, "Writing objects", current, total, bytes, current == total);
  return 0;
}

static int cb_sideband(const char *str, int len, void *payload) {
  Net *n = (Net *)payload;
  size_t l = len > 0 ? (size_t)len : 0, i;
  if (check_interrupt(n) < 0) return -1;
  if (n->progress) {
    progress_end_line(n);
    n->phase = 0;
    for (i = 0; i < l; i++) {
      if (n->side_bol) fputs("remote: ", stderr);
      fputc(str[i], stderr);
      n->side_bol = str[i] == '\n' || str[i] == '\r';
    }
    fflush(stderr);
  }
  if (l >= sizeof n->side) {
    str += l - (sizeof n->side - 1);
    l = sizeof n->side - 1;
  }
  if (n->side_len + l >= sizeof n->side) {  /* keep the newest text */
    size_t drop = n->side_len + l - (sizeof n->side - 1);
    memmove(n->side, n->side + drop, n->side_len - drop);
    n->side_len -= drop;
  }
  memcpy(n->side + n->side_len, str, l);
  n->side_len += l;
  n->side[n->side_len] = '\0';
  return 0;
}

static int cb_push_update(const char *ref, const char *status, void *payload) {
  Net *n = (Net *)payload;
  Update *u;
  if (n->nup == n->cap) {
    size_t cap = n->cap ? n->cap * 2 : 8;
    Update *nu = (Update *)realloc(n->up, cap * sizeof(Update));
    if (nu == NULL) {
      git_error_set_oom();
      return -1;
    }
    n->up = nu;
    n->cap = cap;
  }
  u = &n->up[n->nup];
  u->ref = strdup(ref);
  u->status = status != NULL ? strdup(status) : NULL;
  if (u->ref == NULL || (status != NULL && u->status == NULL)) {
    free(u->ref);
    free(u->status);
    git_error_set_oom();
    return -1;
  }
  n->nup++;
  return 0;
}

/*
** Network options, a table at idx: username=, password=, source= (where the credentials
** came from, for messages), attempts= (default 3), timeout= (seconds of silence, default
** 60; 0 for none), progress= (true/false/"auto": on a terminal).
** Pushes the Net box; fills callbacks and returns the timeout.
*/
static Net *net_setup(lua_State *L, int idx, git_remote_callbacks *cb, double *timeout) {
  Net *n;
  idx = lua_absindex(L, idx);
  opt_table(L, idx);
  n = (Net *)lua_newuserdatauv(L, sizeof(Net), 0);
  memset(n, 0, sizeof *n);
  luaL_setmetatable(L, NET_MT);
  n->max_attempts = 3;
  n->side_bol = 1;
  *timeout = 60;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "username");
    n->username = lua_tostring(L, -1);
    lua_getfield(L, idx, "password");
    n->password = lua_tostring(L, -1);
    lua_getfield(L, idx, "source");
    n->source = lua_tostring(L, -1);
    lua_pop(L, 3);  /* the strings stay referenced by the options table */
    lua_getfield(L, idx, "attempts");
    n->max_attempts = (int)luaL_optinteger(L, -1, 3);
    lua_getfield(L, idx, "timeout");
    *timeout = luaL_optnumber(L, -1, 60);
    lua_getfield(L, idx, "progress");
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "auto") == 0)
      n->progress = isatty(STDERR_FILENO);
    else
      n->progress = lua_toboolean(L, -1);
    lua_pop(L, 3);
  }
  cb->credentials = cb_credentials;
  cb->transfer_progress = cb_transfer;
  cb->sideband_progress = cb_sideband;
  cb->push_transfer_progress = cb_push_transfer;
  cb->push_update_reference = cb_push_update;
  cb->payload = n;
  return n;
}

/* Pushes url without its password: "https://bot:secret@host/x" -> "https://bot@host/x". */
static const char *push_redacted(lua_State *L, const char *url) {
  const char *start = strstr(url, "://"), *at, *colon, *slash;
  if (start == NULL) return lua_pushstring(L, url);
  start += 3;
  slash = strchr(start, '/');
  at = strchr(start, '@');
  if (at == NULL || (slash != NULL && at > slash)) return lua_pushstring(L, url);
  colon = memchr(start, ':', (size_t)(at - start));
  if (colon == NULL) return lua_pushstring(L, url);
  lua_pushlstring(L, url, (size_t)(colon - url));
  lua_pushstring(L, at);
  lua_concat(L, 2);
  return lua_tostring(L, -1);
}

/*
** After a network call failed: pushes nil, message, code. The callback's own reason wins
** over libgit2's; a timeout gets ETIMEDOUT. Ctrl-C raises (the caller has freed what it held).
*/
static int net_fail(lua_State *L, Net *n, int err, const char *what, const char *remote,
                    const char *url) {
  const char *code = code_name(err);
  const char *msg = last_message();
  if (n->stop_code != NULL) {
    code = n->stop_code;
    msg = n->stop;
  } else if (stream_timed_out)
    code = "ETIMEDOUT";
  if (strcmp(code, "interrupted") == 0 || relua_interrupted()) return relua_raise_interrupt(L);
  lua_pushnil(L);                                   /* [nil] */
  url = push_redacted(L, url != NULL ? url : "?");  /* [nil, url] */
  if (remote != NULL && strcmp(remote, url) != 0) {
    remote = push_redacted(L, remote);              /* [nil, url, remote] */
    if (strcmp(remote, url) != 0) lua_pushfstring(L, "%s %s (%s): %s", what, remote, url, msg);
    else lua_pushfstring(L, "%s %s: %s", what, url, msg);
    lua_remove(L, -2);
  } else
    lua_pushfstring(L, "%s %s: %s", what, url, msg);
  lua_remove(L, -2);                                /* [nil, message] */
  if (strcmp(code, "ECERTIFICATE") == 0 && !is_http(url) && strstr(last_message(), "ssh") != NULL)
    lua_pushliteral(L, " (the server's SSH host key is not in ~/.ssh/known_hosts: check it and add "
                       "it, e.g. with ssh-keyscan)"),
    lua_concat(L, 2);
  lua_pushstring(L, code);
  return 3;
}

static void net_done(Net *n) {
  if (n->printed || (n->progress && !n->side_bol && n->side_len > 0)) {
    fputc('\n', stderr);
    fflush(stderr);
    n->printed = 0;
  }
}

/* Looks up a remote by name, or makes an anonymous one when the name is a URL or a path. */
static int get_remote(lua_State *L, Repo *r, Hold *h, const char *what, const char *name,
                      git_remote **out) {
  int err, valid = 0;
  if (r != NULL && git_remote_name_is_valid(&valid, name) == 0 && valid) {
    err = git_remote_lookup(out, r->repo, name);
    if (err == GIT_ENOTFOUND) {
      relua_fail(L, "ENOTFOUND", "%s: no remote named '%s' in %s (add it: git remote add %s URL)",
                 what, name, repo_where(r), name);
      return -1;
    }
  } else if (r != NULL)
    err = git_remote_create_anonymous(out, r->repo, name);
  else
    err = git_remote_create_detached(out, name);
  if (err < 0) {
    gfail(L, err, "%s: remote '%s'", what, push_redacted(L, name));
    lua_remove(L, -4);  /* the redacted name under nil, message, code */
    return -1;
  }
  hold(h, H_REMOTE, *out);
  return 0;
}

/* A git_strarray over a list of strings at idx; the pointers live in a userdata pushed here. */
static void to_strarray(lua_State *L, int idx, git_strarray *sa, const char *what) {
  lua_Integer i, n;
  char **items;
  idx = lua_absindex(L, idx);
  n = luaL_len(L, idx);
  items = (char **)lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof(char *), 0);
  for (i = 1; i <= n; i++) {
    if (lua_geti(L, idx, i) != LUA_TSTRING) luaL_error(L, "%s: refspecs must be strings", what);
    items[i - 1] = (char *)lua_tostring(L, -1);  /* anchored by the list */
    lua_pop(L, 1);
  }
  sa->strings = items;
  sa->count = (size_t)n;
}

/*
** repo:fetch(remote, refspecs|nil, {prune=, tags="auto"|"all"|"none", <network options>})
**   -> true | nil, msg, code
*/
static int repo_fetch(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  git_fetch_options opts;
  git_strarray specs = {NULL, 0};
  git_remote *remote = NULL;
  double timeout;
  Hold *h = NULL;
  Net *n;
  int err;
  git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
  opt_table(L, 3);
  opt_table(L, 4);
  if (lua_istable(L, 3)) to_strarray(L, 3, &specs, "git.fetch");
  n = net_setup(L, 4, &opts.callbacks, &timeout);
  if (lua_istable(L, 4)) {
    static const char *const tagopts[] = {"auto", "all", "none", NULL};
    static const git_remote_autotag_option_t tagvals[] = {
      GIT_REMOTE_DOWNLOAD_TAGS_AUTO, GIT_REMOTE_DOWNLOAD_TAGS_ALL, GIT_REMOTE_DOWNLOAD_TAGS_NONE};
    lua_getfield(L, 4, "prune");
    if (!lua_isnil(L, -1)) opts.prune = lua_toboolean(L, -1) ? GIT_FETCH_PRUNE : GIT_FETCH_NO_PRUNE;
    lua_getfield(L, 4, "tags");
    if (!lua_isnil(L, -1)) opts.download_tags = tagvals[luaL_checkoption(L, -1, NULL, tagopts)];
    lua_pop(L, 2);
  }
  h = hold_new(L);
  if (get_remote(L, r, h, "git.fetch", name, &remote) < 0) return hold_free(h), 3;
  stream_begin(git_remote_url(remote), timeout);
  err = git_remote_fetch(remote, specs.count > 0 ? &specs : NULL, &opts, NULL);
  stream_end();
  net_done(n);
  if (err < 0) {
    int rc;
    lua_pushstring(L, git_remote_url(remote));
    hold_free(h);
    rc = net_fail(L, n, err, "git.fetch", name, lua_tostring(L, -1));
    return rc;
  }
  hold_free(h);
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes the advertised references of a connected remote: {{name=, id=}} */
static void push_heads(lua_State *L, git_remote *remote) {
  const git_remote_head **heads = NULL;
  size_t i, count = 0;
  if (git_remote_ls(&heads, &count, remote) < 0) count = 0;
  lua_createtable(L, (int)count, 0);
  for (i = 0; i < count; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, heads[i]->name);
    lua_setfield(L, -2, "name");
    push_oid(L, &heads[i]->oid);
    lua_setfield(L, -2, "id");
    if (heads[i]->symref_target != NULL) {
      lua_pushstring(L, heads[i]->symref_target);
      lua_setfield(L, -2, "symref");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int ls_remote_common(lua_State *L, Repo *r, const char *name, int optidx) {
  git_remote_callbacks cb;
  git_remote *remote = NULL;
  double timeout;
  Hold *h = NULL;
  Net *n;
  int err;
  git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
  opt_table(L, optidx);
  n = net_setup(L, optidx, &cb, &timeout);
  h = hold_new(L);
  if (get_remote(L, r, h, "git.ls_remote", name, &remote) < 0) return hold_free(h), 3;
  stream_begin(git_remote_url(remote), timeout);
  err = git_remote_connect(remote, GIT_DIRECTION_FETCH, &cb, NULL, NULL);
  stream_end();
  net_done(n);
  if (err < 0) {
    lua_pushstring(L, git_remote_url(remote));
    hold_free(h);
    return net_fail(L, n, err, "git.ls_remote", name, lua_tostring(L, -1));
  }
  push_heads(L, remote);
  git_remote_disconnect(remote);
  hold_free(h);
  return 1;
}

/* repo:ls_remote(remote [, <network options>]) -> {{name=, id=, symref=}} | nil, msg, code */
static int repo_ls_remote(lua_State *L) {
  Repo *r = check_repo(L, 1);
  return ls_remote_common(L, r, luaL_checkstring(L, 2), 3);
}

/* git.ls_remote(url [, <network options>]) */
static int l_ls_remote(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  return ls_remote_common(L, NULL, luaL_checkstring(L, 1), 2);
}

/*
** repo:push(remote, refspecs, <network options>) -> results, server_text | nil, msg, code
** results: {{ref=, status=nil|reason}} as the server reported each reference; a rejected
** reference is NOT an error here (libgit2 returns 0): lib/relua/git.lua checks them.
*/
static int repo_push(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  git_push_options opts;
  git_strarray specs = {NULL, 0};
  git_remote *remote = NULL;
  const char *url;
  double timeout;
  size_t i;
  Hold *h = NULL;
  Net *n;
  int err;
  git_push_options_init(&opts, GIT_PUSH_OPTIONS_VERSION);
  luaL_checktype(L, 3, LUA_TTABLE);
  opt_table(L, 4);
  to_strarray(L, 3, &specs, "git.push");
  n = net_setup(L, 4, &opts.callbacks, &timeout);
  h = hold_new(L);
  if (get_remote(L, r, h, "git.push", name, &remote) < 0) return hold_free(h), 3;
  url = git_remote_pushurl(remote) != NULL ? git_remote_pushurl(remote) : git_remote_url(remote);
  lua_pushstring(L, url);  /* [.., hold, url] */
  url = lua_tostring(L, -1);
  stream_begin(url, timeout);
  err = git_remote_push(remote, &specs, &opts);
  stream_end();
  net_done(n);
  if (err < 0) {
    hold_free(h);
    if (err == GIT_ENONFASTFORWARD && n->stop_code == NULL) {
      luaL_Buffer b;
      lua_pushnil(L);
      luaL_buffinit(L, &b);
      lua_pushfstring(L, "git.push %s: rejected before sending (non-fast-forward): ", name);
      luaL_addvalue(&b);
      for (i = 0; i < specs.count; i++) {
        if (i > 0) luaL_addstring(&b, ", ");
        luaL_addstring(&b, specs.strings[i]);
      }
      luaL_addstring(&b, ": the remote has commits that are not in yours; fetch and merge "
                         "first, or force with a leading '+'");
      luaL_pushresult(&b);
      lua_pushliteral(L, "ENONFASTFORWARD");
      return 3;
    }
    return net_fail(L, n, err, "git.push", name, url);
  }
  lua_createtable(L, (int)n->nup, 0);
  for (i = 0; i < n->nup; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, n->up[i].ref);
    lua_setfield(L, -2, "ref");
    if (n->up[i].status != NULL) {
      lua_pushstring(L, n->up[i].status);
      lua_setfield(L, -2, "status");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushlstring(L, n->side, n->side_len);
  net_clear(n);
  hold_free(h);
  return 2;
}

/*
** git.clone(url, path, {bare=, branch=, <network options>}) -> Repository | nil, msg, code
** libgit2 removes the folder it created when the clone fails.
*/
static int l_clone(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  const char *url = luaL_checkstring(L, 1);
  const char *path = luaL_checkstring(L, 2);
  git_clone_options opts;
  double timeout;
  Repo *r;
  Net *n;
  int err;
  git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
  opt_table(L, 3);
  n = net_setup(L, 3, &opts.fetch_opts.callbacks, &timeout);
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "bare");
    opts.bare = lua_toboolean(L, -1);
    lua_getfield(L, 3, "branch");
    opts.checkout_branch = lua_tostring(L, -1);  /* anchored by the options table */
    lua_pop(L, 2);
  }
  r = repo_box(L);
  stream_begin(url, timeout);
  err = git_clone(&r->repo, url, path, &opts);
  stream_end();
  net_done(n);
  if (err < 0) {
    if (err == GIT_EEXISTS) {
      relua_fail(L, "EEXISTS", "git.clone %s: %s exists and is not an empty folder",
                 push_redacted(L, url), path);
      lua_remove(L, -4);
      return 3;
    }
    return net_fail(L, n, err, "git.clone", NULL, url);
  }
  return 1;
}

/* ---------------------------------------------------------------- remotes */

/* repo:remotes() -> {names} */
static int repo_remotes(lua_State *L) {
  Repo *r = check_repo(L, 1);
  Hold *h = hold_new(L);
  size_t i;
  int err = git_remote_list(&h->sa, r->repo);
  if (err < 0) return hgfail(L, h, err, "git.remotes: %s", repo_where(r));
  hold(h, H_STRARRAY, NULL);
  lua_createtable(L, (int)h->sa.count, 0);
  for (i = 0; i < h->sa.count; i++) {
    lua_pushstring(L, h->sa.strings[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  hold_free(h);
  return 1;
}

/* repo:remote(name) -> {name=, url=, push_url=} | nil, msg, code */
static int repo_remote(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  Hold *h = hold_new(L);
  git_remote *remote = NULL;
  int err = git_remote_lookup(&remote, r->repo, name);
  if (err == GIT_ENOTFOUND || err == GIT_EINVALIDSPEC)
    return hfail(L, h, "ENOTFOUND", "git.remote: no remote named '%s' in %s", name,
                      repo_where(r));
  if (err < 0) return hgfail(L, h, err, "git.remote: %s", name);
  hold(h, H_REMOTE, remote);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, git_remote_url(remote));
  lua_setfield(L, -2, "url");
  if (git_remote_pushurl(remote) != NULL) {
    lua_pushstring(L, git_remote_pushurl(remote));
    lua_setfield(L, -2, "push_url");
  }
  hold_free(h);
  return 1;
}

/* repo:remote_add(name, url) -> true | nil, msg, code */
static int repo_remote_add(lua_State *L) {
  Repo *r = check_repo(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *url = luaL_checkstring(L, 3);
  git_remote *remote = NULL;
  int err = git_remote_create(&remote, r->repo, name, url);
  if (err == GIT_EEXISTS)
    return relua_fail(L, "EEXISTS", "git.remote_add: remote '%s' already exists in %s", name,
                      repo_where(r));
  if (err == GIT_EINVALIDSPEC)
    return relua_fail(L, "EINVALIDSPEC", "git.remote_add: invalid remote name '%s'", name);
  if (err < 0) return gfail(L, err, "git.remote_add: %s", name);
  git_remote_free(remote);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- stale lock files */

/*
** core.lock_info(path) -> {holders=N, pid=P, older=bool} | nil (no such file)
** The facts that tell a stale git lock file from a live one: how many processes on this
** machine hold it open (libgit2 keeps a lock file open from its creation to its rename;
** P is one of them) and whether it is older than this process. Policy is Lua's.
*/
static int l_lock_info(lua_State *L) {
  relua_need_git();  /* libgit2 starts on the first operation, not on require */
  const char *path = luaL_checkstring(L, 1);
  struct stat st, fst;
  struct timespec start;
  DIR *proc;
  struct dirent *e;
  int holders = 0;
  long pid = 0;
  if (lstat(path, &st) != 0) return relua_oserror(L, "git.lock_info", path);
  proc = opendir("/proc");
  while (proc != NULL && (e = readdir(proc)) != NULL) {
    char dir[300];
    DIR *fds;
    struct dirent *f;
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    snprintf(dir, sizeof dir, "/proc/%s/fd", e->d_name);
    if ((fds = opendir(dir)) == NULL) continue;
    while ((f = readdir(fds)) != NULL) {
      char link[600];
      if (f->d_name[0] == '.') continue;
      snprintf(link, sizeof link, "%s/%s", dir, f->d_name);
      if (stat(link, &fst) == 0 && fst.st_dev == st.st_dev && fst.st_ino == st.st_ino) {
        holders++;
        pid = strtol(e->d_name, NULL, 10);
      }
    }
    closedir(fds);
  }
  if (proc != NULL) closedir(proc);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, holders);
  lua_setfield(L, -2, "holders");
  lua_pushinteger(L, pid);
  lua_setfield(L, -2, "pid");
  relua_started(&start);
  lua_pushboolean(L, st.st_mtim.tv_sec < start.tv_sec ||
                         (st.st_mtim.tv_sec == start.tv_sec && st.st_mtim.tv_nsec < start.tv_nsec));
  lua_setfield(L, -2, "older");
  return 1;
}

/* ---------------------------------------------------------------- registration */

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"discover", l_discover},
  {"init", l_init},
  {"clone", l_clone},
  {"ls_remote", l_ls_remote},
  {"is_valid_ref", l_is_valid_ref},
  {"lock_info", l_lock_info},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"close", repo_close},
  {"path", repo_path},
  {"workdir", repo_workdir},
  {"is_bare", repo_is_bare},
  {"head", repo_head},
  {"rev_parse", repo_rev_parse},
  {"status", repo_status},
  {"state", repo_state},
  {"walk", repo_walk},
  {"first_reachable", repo_first_reachable},
  {"merge_base", repo_merge_base},
  {"is_ancestor", repo_is_ancestor},
  {"changed_paths", repo_changed_paths},
  {"commit", repo_commit},
  {"commit_tree", repo_commit_tree},
  {"reset", repo_reset},
  {"checkout", repo_checkout},
  {"ref", repo_ref},
  {"branches", repo_branches},
  {"branch_create", repo_branch_create},
  {"branch_delete", repo_branch_delete},
  {"tags", repo_tags},
  {"tag_commits", repo_tag_commits},
  {"tag_names", repo_tag_names},
  {"tag_create", repo_tag_create},
  {"tag_delete", repo_tag_delete},
  {"pack_refs", repo_pack_refs},
  {"reflog", repo_reflog},
  {"remotes", repo_remotes},
  {"remote", repo_remote},
  {"remote_add", repo_remote_add},
  {"fetch", repo_fetch},
  {"ls_remote", repo_ls_remote},
  {"push", repo_push},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", repo_close},
  {"__close", repo_close},
  {"__tostring", repo_tostring},
  {"__index", NULL},  /* placeholder: the methods table */
  {NULL, NULL}
};

int luaopen_relua_core_git(lua_State *L) {
  luaL_newmetatable(L, HOLD_MT);
  lua_pushcfunction(L, hold_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, NET_MT);
  lua_pushcfunction(L, net_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, WALK_MT);
  lua_pushcfunction(L, walk_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, REPO_MT);         /* [mt] */
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlibtable(L, methods);          /* [mt, methods] */
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");        /* mt.__index = methods */

  luaL_newlib(L, funcs);                 /* [mt, methods, M] */
  lua_insert(L, -2);
  lua_setfield(L, -2, "Repository");     /* M.Repository = methods (lib/ adds its own) */
  lua_remove(L, -2);
  return 1;
}
