/*
** relua.h: what the host's C files share.
** Each host module lives in its own file and exports one luaopen_relua_<name>; the build
** registers it in package.preload as "relua.<name>" with '_' read as '.', so
** luaopen_relua_core_fs is require "relua.core.fs". Everything else in a module is static.
*/
#ifndef RELUA_H
#define RELUA_H

#include <stddef.h>

#include "lua.h"
#include "lauxlib.h"

#ifndef RELUA_VERSION
#define RELUA_VERSION "0.0.0"
#endif

/* The Lua library carried inside the binary (generated from lib/ by tools/embed.lua). */
typedef struct relua_Embedded {
  const char *name;    /* module name: "relua.cli" */
  const char *path;    /* source path: "lib/relua/cli.lua" */
  const char *source;
  size_t len;
} relua_Embedded;
extern const relua_Embedded relua_embedded[];

/* Registry keys set by main.c: the binary's own path (symlinks resolved), and the data
   folder compiled in (share/relua: recipes, playbooks, types), read by relua.core.version. */
#define RELUA_SELF_KEY "relua.self"
#define RELUA_DATADIR_KEY "relua.datadir"

/* Metatable of relua's structured errors: {message=, code=, hint=, exit=}. */
#define RELUA_ERROR_MT "relua.Error"

/*
** Failures of the world: push nil, message, code and return 3 (luaL_fileresult's shape).
** relua_oserror formats "what: path: strerror(errno)" and uses the errno name as the code.
*/
int relua_fail(lua_State *L, const char *code, const char *fmt, ...);
int relua_oserror(lua_State *L, const char *what, const char *path);
const char *relua_errno_name(int err);

/* When this process started (realtime clock, nanoseconds; taken before main). */
struct timespec;
void relua_started(struct timespec *out);

/* Raise a structured error (a table with metatable relua.Error). Never returns. */
int relua_raise(lua_State *L, int exitcode, const char *code, const char *fmt, ...);
/* Makes the table on top of the stack a structured error (sets the relua.Error metatable,
   creating it when needed). */
void relua_error_mark(lua_State *L);

/*
** Ctrl-C and SIGTERM. The handler sets a flag and a hook; a running Lua function stops at
** its next instruction with a structured error {code="interrupted", exit=128+signal: 130
** for Ctrl-C, 143 for SIGTERM}. C code that blocks (waitpid, poll, curl, libgit2) keeps
** SIGINT and SIGTERM blocked outside its wait (ppoll), polls relua_interrupted() and,
** after freeing what it holds, calls relua_raise_interrupt. relua_interrupt_exit() is the
** exit status of the pending (or last) interruption.
*/
void relua_sigint_install(lua_State *L);
void relua_sigint_restore(void);
int relua_interrupted(void);
int relua_interrupt_exit(void);
int relua_raise_interrupt(lua_State *L);
/*
** Called from another thread (host/store_pg.c's watcher): stops the main thread as SIGTERM
** does, but the error raised is {code="lost", exit=1, message=message} (copied; at most
** 511 bytes). Once per process; a no-op before relua_sigint_install.
*/
void relua_cancel(const char *message);
/* The runner around a phase's call: on=1 before (a cancellation then cannot be caught by
   the phase's code), on=0 after: returns the signal received meanwhile, 0 for none. */
int relua_phase_guard(lua_State *L, int on);
/* Replaces os.exit: inside a guarded phase it raises {code="exit"} (the phase fails). */
void relua_guard_exit(lua_State *L);

/* Libraries whose global init is deferred to the first require of their module. */
void relua_need_curl(void);
void relua_need_git(void);
void relua_global_shutdown(void);

/*
** Files. relua_write_atomic replaces path durably: a temp file in the same folder, write,
** fsync, rename, fsync of the folder. On failure it returns -1 with errno set, and the old
** file is untouched. relua_fsync_dir fsyncs the folder that holds path.
*/
int relua_write_atomic(const char *path, const char *data, size_t len, int mode);
/* write(2) until all of data is written (EINTR retried); 0, or -1 with errno set. */
int relua_write_all(int fd, const char *data, size_t len);
int relua_fsync_dir(const char *path);
/* mkdir -p path (mode 0755); 0, or -1 with errno. */
int relua_mkdir_p(const char *path);

/*
** Locks (host/lock.c): the one lock implementation, an exclusive flock(2) on a file that
** records its holder. relua_lock_take returns the held descriptor, or -1 with errno
** (EWOULDBLOCK: held by another; *busy_fd is then a descriptor of the file to read the
** holder's record from, which the caller closes). wait: 0 once, < 0 until free (Ctrl-C:
** EINTR), else seconds. relua_lock_held: 1 when another process holds path's lock.
*/
int relua_lock_take(const char *path, const char *record, double wait, int *busy_fd);
void relua_lock_release(int fd);
int relua_lock_held(const char *path);
void relua_lock_push_record(lua_State *L, int fd);

/*
** JSON: encode the value at idx with sorted keys, integers kept as integers; pushes the
** string. Raises (luaL_error) on values JSON cannot hold. pretty: 2-space indentation.
*/
void relua_json_encode(lua_State *L, int idx, int pretty);
/*
** Strict RFC 8259 decode of s[0..len). Pushes the value and returns 1, or pushes nil,
** "json.decode: NAME: what at line L, column C", "EJSON" and returns 3. null is a NULL
** light userdata (cjson.null); integral numbers are integers. s must outlive the call.
*/
int relua_json_decode(lua_State *L, const char *s, size_t len, const char *name);

/*
** Secrets (host/secret.c). relua_mask pushes s[0..len) with every secret replaced by ***
** (declared values, credential-named environment variables, their base64 and
** percent-encoded forms, URL userinfo, credential query parameters, Authorization and
** Bearer/Basic values) and returns it (its length in *outlen when not NULL). Everything the
** host writes for a person or to disk goes through it.
** A relua_Masker masks a stream written in pieces (zero it to start): relua_masker_feed
** returns the malloc'd bytes to write now (NULL when none; *outlen their length) and keeps
** a partial line, and what may begin a secret, for the next piece. flush: 0 keep a partial
** line, 1 an idle pause (write the partial line but not a possible secret's beginning),
** 2 the end (write everything). It never raises; out of memory it drops, never leaks.
*/
const char *relua_mask(lua_State *L, const char *s, size_t len, size_t *outlen);
typedef struct relua_Masker {
  char *carry;
  size_t len, cap;
} relua_Masker;
char *relua_masker_feed(lua_State *L, relua_Masker *m, const char *data, size_t n, int flush,
                        size_t *outlen);
void relua_masker_free(relua_Masker *m);

#endif
