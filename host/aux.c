/*
** aux.c: helpers the host's modules share: result conventions, Ctrl-C, deferred library
** initialisation and durable file replacement.
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "relua.h"

/* ---------------------------------------------------------------- start time */

/*
** When this process started, on the realtime clock, to the nanosecond: taken before main
** runs. It orders files against this run (a lock file older than the run was left by an
** earlier process). The kernel's own start time will not do: it counts in clock ticks
** (10 ms) from the fork, so a file written by a writer that died a moment before the exec
** of relua looks newer than the run.
*/
static struct timespec started;

__attribute__((constructor)) static void note_start(void) {
  clock_gettime(CLOCK_REALTIME, &started);
}

void relua_started(struct timespec *out) {
  *out = started;
}

/* ---------------------------------------------------------------- results */

const char *relua_errno_name(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ELOOP: return "ELOOP";
    case EXDEV: return "EXDEV";
    case EPIPE: return "EPIPE";
    case ECHILD: return "ECHILD";
    case ESRCH: return "ESRCH";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "EIO";
  }
}

int relua_fail(lua_State *L, const char *code, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushstring(L, code);
  return 3;
}

int relua_oserror(lua_State *L, const char *what, const char *path) {
  int err = errno;
  lua_pushnil(L);
  if (path)
    lua_pushfstring(L, "%s: %s: %s", what, path, strerror(err));
  else
    lua_pushfstring(L, "%s: %s", what, strerror(err));
  lua_pushstring(L, relua_errno_name(err));
  return 3;
}

/* ---------------------------------------------------------------- Ctrl-C */

/*
** SIGINT (Ctrl-C), SIGTERM (a cancelled CI job, a service manager stopping us) and SIGHUP
** (a closed terminal or ssh session) interrupt the same way: the handler sets a flag and a hook, and the running code raises the
** structured error {code="interrupted", exit=128+signal} at its next instruction, or after
** freeing what it holds when it was blocked in C. Signal state is process-wide by nature:
** a handler cannot reach a lua_State otherwise.
*/
static lua_State *sig_state = NULL;
static volatile sig_atomic_t sig_flag = 0;   /* the signal that arrived; 0 for none */
static int sig_last = SIGINT;                /* the last one raised (a deferred re-raise) */
static struct sigaction sig_old_int, sig_old_term, sig_old_hup;
static int sig_guarded = 0;                  /* a phase runs: a cancellation cannot be caught */
static volatile sig_atomic_t sig_during = 0; /* the first signal received while guarded */
static int sig_installed = 0;

static volatile sig_atomic_t sig_rearmed = 0; /* the hook re-raises a caught cancellation */

/* A cancel (relua_cancel): the main thread, the message, whether the pending signal is the
   cancel's, and whether the last raise was (a re-raise says the same). */
#define CANCEL_MAGIC 0x5ca1ab1e
static pthread_t sig_main;
static char cancel_msg[512];
static volatile sig_atomic_t cancel_sent = 0;
static volatile sig_atomic_t sig_cancel = 0;
static int cancel_last = 0;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  /* A re-raise waits for Lua code: a C function that relua's core calls while it records
     something (the encoder of a state write) completes, and its caller raises after. */
  if (sig_rearmed && lua_getinfo(L, "S", ar) && ar->what[0] == 'C') return;
  lua_sethook(L, NULL, 0, 0);
  relua_raise_interrupt(L);
}

static void on_signal(int sig, siginfo_t *info, void *uc) {
  (void)uc;
  sig_cancel = info != NULL && info->si_code == SI_QUEUE &&
               info->si_value.sival_int == CANCEL_MAGIC;
  sig_flag = sig;
  if (sig_guarded && sig_during == 0) sig_during = sig;
  sig_rearmed = 0;
  if (sig_state != NULL)
    lua_sethook(sig_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void arm(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  /* a second signal while C code is stuck kills the process */
  sa.sa_flags = SA_RESETHAND | SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, sig_installed ? NULL : &sig_old_int);
  sigaction(SIGTERM, &sa, sig_installed ? NULL : &sig_old_term);
  sigaction(SIGHUP, &sa, sig_installed ? NULL : &sig_old_hup);
  sig_installed = 1;
}

void relua_sigint_install(lua_State *L) {
  sig_main = pthread_self();
  sig_state = L;
  sig_flag = 0;
  arm();
}

void relua_sigint_restore(void) {
  if (sig_installed) {
    sigaction(SIGINT, &sig_old_int, NULL);
    sigaction(SIGTERM, &sig_old_term, NULL);
    sigaction(SIGHUP, &sig_old_hup, NULL);
    sig_installed = 0;
  }
  sig_state = NULL;
}

int relua_interrupted(void) {
  return sig_flag != 0;
}

/* SIGHUP (the terminal or the session went away) ends a run as SIGTERM does: exit 143. */
static int exit_for(int sig) {
  return sig == SIGHUP ? 128 + SIGTERM : 128 + sig;
}

int relua_interrupt_exit(void) {
  if (sig_flag != 0 ? sig_cancel : cancel_last) return 1;
  return exit_for(sig_flag != 0 ? sig_flag : sig_last);
}

/*
** Cancelling from another thread: the PostgreSQL store's watcher (host/store_pg.c) sees the
** connection that holds the run's lock die while the main thread is busy elsewhere (a
** long r:sh, a sleep, Lua code). The main thread gets SIGTERM, queued with a value that
** tells it from a real one, so it stops exactly as for SIGTERM (a blocked wait wakes, a
** child is killed, a phase cannot catch it); the error raised is {code="lost", exit=1,
** message=message}. Sent once until it is raised; nothing when relua's handlers are not
** installed.
*/
void relua_cancel(const char *message) {
  union sigval v;
  if (!sig_installed || cancel_sent) return;
  cancel_sent = 1;
  snprintf(cancel_msg, sizeof cancel_msg, "%s", message);
  v.sival_int = CANCEL_MAGIC;
  pthread_sigqueue(sig_main, SIGTERM, v);
}

int relua_raise_interrupt(lua_State *L) {
  int sig = sig_flag != 0 ? sig_flag : sig_last;
  int lost = sig_flag != 0 ? sig_cancel : cancel_last;
  if (sig_flag != 0 && sig_cancel) cancel_sent = 0;   /* delivered: a later loss cancels too */
  sig_last = sig;
  cancel_last = lost;
  sig_flag = 0;
  sig_cancel = 0;
  if (sig_installed) arm();
  /* Guarded (a phase runs): the hook stays armed, so the instruction after a recipe's
     pcall raises again, and so on up to the runner; a recipe cannot swallow it. */
  if (sig_guarded && sig_state != NULL) {
    sig_rearmed = 1;
    lua_sethook(sig_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  }
  if (lost) return relua_raise(L, 1, "lost", "%s", cancel_msg);
  if (sig == SIGTERM) return relua_raise(L, exit_for(sig), "interrupted", "terminated (SIGTERM)");
  if (sig == SIGHUP)
    return relua_raise(L, exit_for(sig), "interrupted",
                       "terminated (SIGHUP: the terminal or session went away)");
  return relua_raise(L, exit_for(sig), "interrupted", "interrupted");
}

/*
** The phase runner guards a phase's call: relua_phase_guard(L, 1) before it, and
** relua_phase_guard(L, 0) after it returns, which disarms the hook and returns the signal
** received meanwhile (0: none). A phase that got one fails with 130/143 whatever its code
** did with the error (pcall, error handlers): the cancellation wins over the recipe.
*/
int relua_phase_guard(lua_State *L, int on) {
  int sig = sig_during;
  (void)L;
  sig_during = 0;
  sig_guarded = on;
  sig_rearmed = 0;
  if (!on && sig != 0 && sig_state != NULL) lua_sethook(sig_state, NULL, 0, 0);
  return sig;
}

/*
** os.exit inside a phase would leave the phase recorded `running` and end relua with an
** exit code of the recipe's choosing (3 reads as "locked"). While a phase is guarded it
** raises instead: the phase fails (rc 1) with this message, and relua's exit codes stay
** its own. Outside a phase, os.exit is Lua's.
*/
static int guarded_exit(lua_State *L) {
  if (sig_guarded) {
    const char *code = lua_isnoneornil(L, 1) ? "" : luaL_tolstring(L, 1, NULL);
    return relua_raise(L, 1, "exit", "os.exit(%s) called inside a phase: a phase ends by "
                       "returning and fails by raising an error (error(...)); relua records "
                       "it and chooses the exit code", code);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

void relua_guard_exit(lua_State *L) {
  lua_getglobal(L, "os");                       /* [os] */
  lua_getfield(L, -1, "exit");                  /* [os, exit] */
  lua_pushcclosure(L, guarded_exit, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------- libraries */

/*
** The host binary links neither libcurl nor libgit2: their modules are lazy (host/main.c)
** and bring the libraries in on first require, with RTLD_GLOBAL. The process-wide init
** and shutdown are therefore found by name. Library lifetime is process state by nature.
*/
static int curl_ready = 0, git_ready = 0;
static void (*curl_cleanup)(void) = NULL;
static int (*git_shutdown)(void) = NULL;

void relua_need_curl(void) {
  CURLcode (*init)(long);
  if (curl_ready) return;
  *(void **)(&init) = dlsym(RTLD_DEFAULT, "curl_global_init");
  *(void **)(&curl_cleanup) = dlsym(RTLD_DEFAULT, "curl_global_cleanup");
  if (init != NULL) init(CURL_GLOBAL_DEFAULT);
  curl_ready = 1;
}

void relua_need_git(void) {
  int (*init)(void);
  if (git_ready) return;
  *(void **)(&init) = dlsym(RTLD_DEFAULT, "git_libgit2_init");
  *(void **)(&git_shutdown) = dlsym(RTLD_DEFAULT, "git_libgit2_shutdown");
  if (init != NULL) init();
  git_ready = 1;
}

void relua_global_shutdown(void) {
  if (git_ready && git_shutdown != NULL) git_shutdown();
  if (curl_ready && curl_cleanup != NULL) curl_cleanup();
  git_ready = curl_ready = 0;
}

/* ---------------------------------------------------------------- files */

int relua_fsync_dir(const char *path) {
  size_t n = strlen(path);
  char *copy = malloc(n + 1);
  int fd, rc, err;
  if (copy == NULL) return -1;
  memcpy(copy, path, n + 1);
  fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  err = errno;
  free(copy);
  if (fd < 0) { errno = err; return -1; }
  rc = fsync(fd);
  err = errno;
  close(fd);
  errno = err;
  return rc;
}

int relua_write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    data += w;
    len -= (size_t)w;
  }
  return 0;
}

int relua_write_atomic(const char *path, const char *data, size_t len, int mode) {
  size_t n = strlen(path);
  char *tmp = malloc(n + sizeof ".relua-tmp.XXXXXX");
  struct stat st;
  int fd, err;
  if (tmp == NULL) return -1;
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".relua-tmp.XXXXXX", sizeof ".relua-tmp.XXXXXX");
  if (mode < 0) {  /* keep the mode of the file it replaces, else 0666 less the umask */
    if (stat(path, &st) == 0) mode = (int)(st.st_mode & 07777);
    else {
      mode_t mask = umask(0);
      umask(mask);
      mode = (int)(0666 & ~mask);
    }
  }
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) goto fail_nofd;
  if (fchmod(fd, (mode_t)mode) != 0) goto fail;
  if (relua_write_all(fd, data, len) != 0) goto fail;
  if (fsync(fd) != 0) goto fail;
  if (close(fd) != 0) { fd = -1; goto fail; }
  fd = -1;
  if (rename(tmp, path) != 0) goto fail;
  free(tmp);
  return relua_fsync_dir(path);
fail:
  err = errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  errno = err;
fail_nofd:
  err = errno;
  free(tmp);
  errno = err;
  return -1;
}

/* mkdir -p path (mode 0755); 0, or -1 with errno. */
int relua_mkdir_p(const char *path) {
  char buf[4096];
  size_t i, n = strlen(path);
  if (n == 0 || n >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
  memcpy(buf, path, n + 1);
  for (i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
      buf[i] = c;
    }
  }
  return 0;
}
