/*
** proc.c: child processes (relua.core.proc). posix_spawn with pipes, the child in its own
** process group so a timeout or Ctrl-C kills everything it started, and one poll loop
** that feeds stdin, captures stdout/stderr (with a cap), tees them to a file and echoes
** them to our terminal as they arrive. Policy (PATH defaults, env merging, signal names,
** result shaping) is in lib/relua/proc.lua.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "relua.h"

extern char **environ;

#define PROC_MT "relua.proc.Process"
#define CHUNK 65536
#define KILL_GRACE 1.0    /* seconds between SIGTERM and SIGKILL of a timed-out group */
#define DRAIN_IDLE 100    /* ms: after the child exited, stop reading pipes idle this long */
#define MASK_IDLE 50      /* ms: a partial output line is shown after this pause */

typedef struct Stream {
  int fd;              /* our end of the pipe, -1 when closed or not piped */
  char *buf;           /* captured bytes (malloc, owned by the handle) */
  size_t len, cap;
  relua_Masker mask;   /* what the tee and the echo get: secrets masked (host/secret.c) */
} Stream;

typedef struct Proc {
  pid_t pid;           /* 0: nothing started */
  int reaped;          /* waitpid collected the child */
  int status;          /* waitpid status when reaped */
  int pidfd;           /* readable when the child exits; -1 when unavailable */
  int child_fd[3];     /* the child's ends until the spawn is done */
  Stream out, err;
  int in_fd;           /* our end of the child's stdin pipe */
  size_t in_off;       /* bytes of the stdin string (uservalue 1) already written */
  int tee_fd;
  int echo, capture, timed_out, truncated;
  int own_group;
  int tee_errno;       /* the first failed write to the tee file (disk full...) */       /* the child leads its own process group (not with stdin=true) */
  size_t max_output;
  double started, ended;
  double timeout;      /* default for wait(), < 0 none */
  char what[16];       /* "proc.run", "proc.sh", "proc.spawn": for messages */
} Proc;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
** Blocks SIGINT, SIGTERM and SIGHUP (saving the mask in *old) and makes *waitmask the mask for
** ppoll: they then only arrive inside ppoll, so a Ctrl-C is never missed between the
** relua_interrupted() check and the wait.
*/
static void block_interrupts(sigset_t *old, sigset_t *waitmask) {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  sigprocmask(SIG_BLOCK, &block, old);
  *waitmask = *old;
  sigdelset(waitmask, SIGINT);
  sigdelset(waitmask, SIGTERM);
  sigdelset(waitmask, SIGHUP);
}

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

static Proc *check_proc(lua_State *L, int idx) {
  return (Proc *)luaL_checkudata(L, idx, PROC_MT);
}

/* Writes ignoring SIGPIPE for this call only: a reader that went away is EPIPE, not death. */
static ssize_t safe_write(int fd, const void *data, size_t len) {
  sigset_t pipe_set, old;
  ssize_t w;
  int err;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old);
  do {
    w = write(fd, data, len);
  } while (w < 0 && errno == EINTR);
  err = errno;
  if (w < 0 && err == EPIPE && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {}
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = err;
  return w;
}

/* 0, or an errno. A tee or echo that fails must not fail the child: the caller notes it. */
static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t w = safe_write(fd, data, len);
    if (w <= 0) {
      if (w < 0 && errno == EAGAIN) {
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 100);
        continue;
      }
      return w < 0 ? errno : EIO;
    }
    data += w;
    len -= (size_t)w;
  }
  return 0;
}

static int reap(Proc *p, int flags) {
  if (p->pid > 0 && !p->reaped) {
    int st;
    pid_t r;
    do {
      r = waitpid(p->pid, &st, flags);
    } while (r < 0 && errno == EINTR);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
      p->reaped = 1;
      p->status = r == p->pid ? st : 0;
      p->ended = now();
      close_fd(&p->pidfd);
    }
  }
  return p->reaped;
}

/* Waits up to `secs` for the child to exit (no reading of pipes). */
static void wait_exit(Proc *p, double secs) {
  double deadline = now() + secs;
  while (!reap(p, WNOHANG)) {
    double left = deadline - now();
    if (left <= 0) return;
    if (p->pidfd >= 0) {
      struct pollfd pf = {p->pidfd, POLLIN, 0};
      poll(&pf, 1, (int)(left * 1000) + 1);
    } else {
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
}

/* Signals the child's group (or the child alone when it shares ours). */
static int signal_child(Proc *p, int sig) {
  if (p->own_group) return kill(-p->pid, sig);
  if (p->reaped) { errno = ESRCH; return -1; }  /* its pid may be someone else's now */
  return kill(p->pid, sig);
}

/* Ends the whole group: TERM, `grace` seconds for the leader, then KILL; reaps the leader. */
static void kill_group(Proc *p, double grace) {
  if (p->pid <= 0) return;
  if (!p->reaped && grace > 0) {
    signal_child(p, SIGTERM);
    signal_child(p, SIGCONT);
    wait_exit(p, grace);
  }
  signal_child(p, SIGKILL);  /* the rest of the group, even after the leader is gone */
  reap(p, 0);
}

static void free_stream(Stream *s) {
  close_fd(&s->fd);
  relua_masker_free(&s->mask);
  free(s->buf);
  s->buf = NULL;
  s->len = s->cap = 0;
}

/* close(), __gc and __close: kills and reaps a child still running, frees everything. */
static int proc_close(lua_State *L) {
  Proc *p = check_proc(L, 1);
  int i;
  if (p->pid > 0 && !p->reaped) kill_group(p, 0);
  for (i = 0; i < 3; i++) close_fd(&p->child_fd[i]);
  free_stream(&p->out);
  free_stream(&p->err);
  close_fd(&p->in_fd);
  close_fd(&p->tee_fd);
  close_fd(&p->pidfd);
  if (p->pid >= 0 && lua_getfield(L, LUA_REGISTRYINDEX, PROC_MT ".live") == LUA_TTABLE) {
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -3);  /* no longer running */
  }
  p->pid = -1;  /* closed */
  return 0;
}

static Proc *check_open(lua_State *L) {
  Proc *p = check_proc(L, 1);
  if (p->pid < 0) luaL_error(L, "proc: the process handle is closed");
  return p;
}

/* ---------------------------------------------------------------- spawn */

/* A failed spawn closes what it opened at once (not only when the handle is collected),
   keeping errno for the message. */
static int spawn_oserror(lua_State *L, Proc *p, const char *what, const char *path) {
  int err = errno, i;
  for (i = 0; i < 3; i++) close_fd(&p->child_fd[i]);
  close_fd(&p->out.fd);
  close_fd(&p->err.fd);
  close_fd(&p->in_fd);
  close_fd(&p->tee_fd);
  errno = err;
  return relua_oserror(L, what, path);
}

/* A pipe whose ends are both above 2, so that dup2 onto 0..2 in the child is real. */
static int make_pipe(int fds[2]) {
  int i;
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  for (i = 0; i < 2; i++) {
    if (fds[i] <= 2) {
      int n = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
      if (n < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        errno = e;
        return -1;
      }
      close(fds[i]);
      fds[i] = n;
    }
  }
  return 0;
}

/* Finds prog in search (a PATH string); pushes the full path, or returns 0. */
static int lookup(lua_State *L, const char *prog, const char *search) {
  const char *s = search, *e;
  if (strchr(prog, '/') != NULL) {
    lua_pushstring(L, prog);
    return 1;
  }
  if (s == NULL) s = "/usr/local/bin:/usr/bin:/bin";
  for (;; s = e + 1) {
    size_t n;
    struct stat st;
    const char *full;
    e = strchr(s, ':');
    n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0) full = lua_pushfstring(L, "./%s", prog);
    else {
      lua_pushlstring(L, s, n);
      full = lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), prog);
      lua_remove(L, -2);
    }
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) return 1;
    lua_pop(L, 1);
    if (e == NULL) return 0;
  }
}

/* Builds a NULL-terminated char* array from the strings of the table at idx (kept alive
   by that table, which stays on the stack); the array lives in a new userdata. */
static char **string_array(lua_State *L, int idx, const char *what, int argn) {
  lua_Integer i, n;
  char **a;
  idx = lua_absindex(L, idx);
  n = luaL_len(L, idx);
  a = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad argument #%d (%s): item %d must be a string", argn, what, (int)i);
    a[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);  /* the table keeps the string alive */
  }
  a[n] = NULL;
  return a;
}

static int opt_field(lua_State *L, int opts, const char *name, int type) {
  int t = lua_getfield(L, opts, name);
  if (t != LUA_TNIL && t != type)
    luaL_error(L, "bad option '%s' (%s expected, got %s)", name, lua_typename(L, type),
               luaL_typename(L, -1));
  return t != LUA_TNIL;
}

/*
** Starting a child. posix_spawn cannot ask the kernel to kill the child when relua dies,
** so this is vfork + exec, as glibc's posix_spawn does it, with one step more:
** PR_SET_PDEATHSIG(SIGKILL). A relua killed with kill -9 (or any death that skips its
** handlers) then takes the child it started with it at once, instead of leaving it to run
** beside the resumed release. SIGINT/SIGTERM/SIGHUP are handled: relua kills the child's
** whole process group itself. (The alternative, recording process groups for the resume
** to kill first, needs a durable write per process and trusts pids that the system reuses;
** the kernel's own link needs neither.) What the child's own children do when it dies is
** theirs: a shell that is killed leaves a background job running.
**
** In the vfork child only async-signal-safe calls: it shares our memory until the exec.
** Every signal is blocked around vfork so no handler of ours runs in the child; the child
** resets every caught signal to the default before unblocking.
*/
typedef struct Launch {
  const char *prog, *cwd;
  char **argv, **envp;
  int stdin_mode, piped, own_group;
  int fd[3];
} Launch;

static int launch(const Launch *ln, pid_t *out) {
  sigset_t all, old;
  volatile int child_err = 0;
  pid_t parent = getpid(), pid;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid = vfork();
  if (pid == 0) {
    struct sigaction dfl, cur;
    sigset_t none;
    int sig, fd;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
      if (sigaction(sig, NULL, &cur) != 0) continue;
      if (cur.sa_handler != SIG_IGN || sig == SIGINT || sig == SIGQUIT || sig == SIGPIPE ||
          sig == SIGTERM || sig == SIGHUP || sig == SIGCHLD)
        sigaction(sig, &dfl, NULL);
    }
    if (ln->own_group && setpgid(0, 0) != 0) goto fail;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) goto fail;
    if (getppid() != parent) _exit(127);           /* relua died before the prctl */
    if (ln->stdin_mode == 1) {
      if (dup2(ln->fd[0], 0) < 0) goto fail;
    } else if (ln->stdin_mode == 0) {
      if ((fd = open("/dev/null", O_RDONLY)) < 0) goto fail;
      if (fd != 0 && (dup2(fd, 0) < 0 || close(fd) != 0)) goto fail;
    }
    if (ln->piped && (dup2(ln->fd[1], 1) < 0 || dup2(ln->fd[2], 2) < 0)) goto fail;
    if (ln->cwd != NULL && chdir(ln->cwd) != 0) goto fail;
    /* Only 0, 1 and 2 pass on: also none of the files Lua's io library opened (those are
       not close-on-exec) nor what relua itself inherited (as Python's close_fds, Go's exec). */
    if (close_range(3, ~0U, 0) != 0) {
      for (fd = 3; fd < 65536; fd++) close(fd);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(ln->prog, ln->argv, ln->envp);
  fail:
    child_err = errno != 0 ? errno : ECHILD;
    _exit(127);
  }
  if (pid < 0) child_err = errno;
  else if (child_err != 0) waitpid(pid, NULL, 0);  /* it never ran: reap it now */
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (child_err != 0) return child_err;
  *out = pid;
  return 0;
}

/*
** core.spawn(what, argv, opts) -> handle | nil, msg, code
** opts: cwd, env (array of "K=V", the whole environment), path (PATH used for the lookup),
** stdin (string | true to inherit | nil for /dev/null), capture, echo, tee, max_output,
** (capture/echo/tee false: the child writes to our stdout/stderr directly).
*/
static int proc_spawn(lua_State *L) {
  const char *what = luaL_checkstring(L, 1);
  const char *cwd = NULL, *tee = NULL, *search = NULL, *prog;
  char **argv, **envp = environ;
  int stdin_mode = 0;  /* 0 /dev/null, 1 string, 2 inherit */
  int piped, rc, i, fds[2];
  Proc *p;
  double timeout;

  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  argv = string_array(L, 2, "argv", 2);                    /* [what, argv, opts, a] */
  luaL_argcheck(L, argv[0] != NULL, 2, "argv must name a program");

  if (opt_field(L, 3, "env", LUA_TTABLE)) {                /* [.., a, env] */
    envp = string_array(L, -1, "env", 3);                  /* [.., a, env, e] */
  } else lua_pushnil(L);                                   /* [.., a, nil, nil] */
  if (opt_field(L, 3, "cwd", LUA_TSTRING)) cwd = lua_tostring(L, -1);  /* [.., cwd] */
  if (opt_field(L, 3, "path", LUA_TSTRING)) search = lua_tostring(L, -1);
  else search = getenv("PATH");                                      /* [.., path] */
  if (opt_field(L, 3, "tee", LUA_TSTRING)) tee = lua_tostring(L, -1);  /* [.., tee] */
  lua_getfield(L, 3, "stdin");                                         /* [.., stdin] */
  if (lua_type(L, -1) == LUA_TSTRING) stdin_mode = 1;
  else if (lua_toboolean(L, -1)) stdin_mode = 2;
  lua_getfield(L, 3, "max_output");
  lua_getfield(L, 3, "capture");
  timeout = lua_getfield(L, 3, "timeout") == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
  lua_pop(L, 1);
  lua_getfield(L, 3, "echo");                      /* [.., stdin, max, capture, echo] */

  p = (Proc *)lua_newuserdatauv(L, sizeof(Proc), 1);
  memset(p, 0, sizeof *p);
  p->pidfd = p->in_fd = p->tee_fd = p->out.fd = p->err.fd = -1;
  for (i = 0; i < 3; i++) p->child_fd[i] = -1;
  luaL_setmetatable(L, PROC_MT);                   /* [.., stdin, max, capture, echo, p] */
  lua_pushvalue(L, -5);
  lua_setiuservalue(L, -2, 1);                     /* the stdin string stays alive */
  snprintf(p->what, sizeof p->what, "%s", what);
  p->timeout = timeout;
  p->capture = lua_isnil(L, -3) || lua_toboolean(L, -3);
  p->echo = lua_toboolean(L, -2);
  p->max_output = lua_isinteger(L, -4) && lua_tointeger(L, -4) >= 0
                      ? (size_t)lua_tointeger(L, -4) : (size_t)64 << 20;

  if (cwd != NULL) {
    struct stat st;
    if (stat(cwd, &st) != 0) return relua_oserror(L, lua_pushfstring(L, "%s: cwd", what), cwd);
    if (!S_ISDIR(st.st_mode)) return relua_fail(L, "ENOTDIR", "%s: cwd: %s: Not a directory", what, cwd);
  }
  relua_mask(L, "", 0, NULL);  /* the secrets are read now, not in the middle of a wait */
  lua_pop(L, 1);
  if (!lookup(L, argv[0], search))
    return relua_fail(L, "ENOENT", "%s: not found: %s", what, argv[0]);
  prog = lua_tostring(L, -1);                      /* [.., p, fullpath] */

  if (tee != NULL) {
    p->tee_fd = open(tee, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (p->tee_fd < 0) return relua_oserror(L, lua_pushfstring(L, "%s: tee", what), tee);
  }
  piped = p->capture || p->echo || p->tee_fd >= 0;
  if (stdin_mode == 1) {
    if (make_pipe(fds) != 0) return spawn_oserror(L, p, what, "pipe");
    p->child_fd[0] = fds[0];
    p->in_fd = fds[1];
  }
  if (piped) {
    if (make_pipe(fds) != 0) return spawn_oserror(L, p, what, "pipe");
    p->out.fd = fds[0];
    p->child_fd[1] = fds[1];
    if (make_pipe(fds) != 0) return spawn_oserror(L, p, what, "pipe");
    p->err.fd = fds[0];
    p->child_fd[2] = fds[1];
  }

  /* Its own group, so that a timeout reaches all it started; but a child that reads our
     terminal must stay in the foreground group or the terminal stops it (SIGTTIN). */
  p->own_group = stdin_mode != 2;
  if (p->echo) {
    fflush(stdout);
    fflush(stderr);
  }
  p->started = now();
  {
    Launch ln;
    ln.prog = prog;
    ln.argv = argv;
    ln.envp = envp;
    ln.cwd = cwd;
    ln.stdin_mode = stdin_mode;
    ln.piped = piped;
    ln.own_group = p->own_group;
    for (i = 0; i < 3; i++) ln.fd[i] = p->child_fd[i];
    rc = launch(&ln, &p->pid);
  }
  for (i = 0; i < 3; i++) close_fd(&p->child_fd[i]);
  if (rc != 0) {
    p->pid = 0;
    errno = rc;
    spawn_oserror(L, p, what, prog);  /* closes the pipes; its 3 results are dropped */
    lua_pop(L, 3);
    if (rc == ENOENT) return relua_fail(L, "ENOENT", "%s: not found: %s", what, argv[0]);
    errno = rc;
    return relua_oserror(L, lua_pushfstring(L, "%s: cannot run", what), prog);
  }
  p->pidfd = pidfd_open(p->pid, 0);  /* -1 on old kernels: the loop then polls waitpid */
  if (p->pidfd >= 0) fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
  if (p->out.fd >= 0) fcntl(p->out.fd, F_SETFL, O_NONBLOCK);
  if (p->err.fd >= 0) fcntl(p->err.fd, F_SETFL, O_NONBLOCK);
  if (p->in_fd >= 0) fcntl(p->in_fd, F_SETFL, O_NONBLOCK);
  lua_pop(L, 1);                                   /* [.., p] */
  lua_getfield(L, LUA_REGISTRYINDEX, PROC_MT ".live");  /* weak keys: the running handles */
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- wait */

/* The tee and the echo get the output with secrets masked; flush: see relua_masker_feed. */
static void show(lua_State *L, Proc *p, Stream *s, int to_fd, const char *data, size_t n, int flush) {
  size_t mn;
  char *masked;
  if (p->tee_fd < 0 && !p->echo) return;
  masked = relua_masker_feed(L, &s->mask, data, n, flush, &mn);
  if (masked == NULL) return;
  if (p->tee_fd >= 0 && mn > 0) {
    int e = write_all(p->tee_fd, masked, mn);
    if (e != 0 && p->tee_errno == 0) p->tee_errno = e;
  }
  if (p->echo && mn > 0) (void)write_all(to_fd, masked, mn);
  free(masked);
}

static void take(lua_State *L, Proc *p, Stream *s, int to_fd, const char *data, size_t n) {
  show(L, p, s, to_fd, data, n, 0);
  if (p->capture) {
    size_t keep = n;
    if (s->len + keep > p->max_output) {
      keep = p->max_output > s->len ? p->max_output - s->len : 0;
      p->truncated = 1;
    }
    if (keep > 0) {
      if (s->len + keep > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        char *nb;
        while (cap < s->len + keep) cap *= 2;
        if (cap > p->max_output && p->max_output >= s->len + keep) cap = p->max_output;
        nb = (char *)realloc(s->buf, cap);
        if (nb == NULL) {  /* out of memory: keep what we have, say it was cut */
          p->truncated = 1;
          return;
        }
        s->buf = nb;
        s->cap = cap;
      }
      memcpy(s->buf + s->len, data, keep);
      s->len += keep;
    }
  }
}

/* Reads what is available; closes the stream at EOF. Returns bytes read. */
static size_t drain(lua_State *L, Proc *p, Stream *s, int to_fd) {
  char chunk[CHUNK];
  size_t total = 0;
  for (;;) {
    ssize_t r = read(s->fd, chunk, sizeof chunk);
    if (r > 0) {
      take(L, p, s, to_fd, chunk, (size_t)r);
      total += (size_t)r;
      if ((size_t)r < sizeof chunk) return total;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return total;
    show(L, p, s, to_fd, NULL, 0, 2);  /* what the masker held back */
    close_fd(&s->fd);  /* EOF or error */
    return total;
  }
}

/* Writes more of the stdin string (uservalue 1 of the handle at stack index idx). */
static void feed(lua_State *L, Proc *p, int idx) {
  size_t len;
  const char *data;
  lua_getiuservalue(L, idx, 1);
  data = lua_tolstring(L, -1, &len);
  lua_pop(L, 1);  /* the uservalue keeps it alive */
  if (data == NULL || p->in_off >= len) {
    close_fd(&p->in_fd);
    return;
  }
  {
    ssize_t w = safe_write(p->in_fd, data + p->in_off, len - p->in_off);
    if (w > 0) p->in_off += (size_t)w;
    else if (w < 0 && errno != EAGAIN) close_fd(&p->in_fd);  /* EPIPE: it stopped reading */
    if (p->in_off >= len) close_fd(&p->in_fd);
  }
}

static void push_result(lua_State *L, Proc *p) {
  lua_createtable(L, 0, 9);
  if (WIFEXITED(p->status)) {
    lua_pushinteger(L, WEXITSTATUS(p->status));
    lua_setfield(L, -2, "code");
  } else if (WIFSIGNALED(p->status)) {
    lua_pushinteger(L, WTERMSIG(p->status));
    lua_setfield(L, -2, "signal");
  }
  lua_pushlstring(L, p->out.buf ? p->out.buf : "", p->out.len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, p->err.buf ? p->err.buf : "", p->err.len);
  lua_setfield(L, -2, "stderr");
  lua_pushnumber(L, p->ended - p->started);
  lua_setfield(L, -2, "duration");
  lua_pushboolean(L, p->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, p->truncated);
  lua_setfield(L, -2, "truncated");
  lua_pushinteger(L, p->pid);
  lua_setfield(L, -2, "pid");
  if (p->tee_errno != 0) {
    lua_pushfstring(L, "%s: tee: %s", p->what, strerror(p->tee_errno));
    lua_setfield(L, -2, "tee_error");
  }
}


/* What a poll slot stands for. */
typedef struct Slot {
  Proc *p;
  int what;   /* 0 stdout, 1 stderr, 2 stdin, 3 exit (pidfd) */
  int other;  /* 0: the waited handle; i > 0: others[i] */
} Slot;

static nfds_t add_slot(struct pollfd *fds, Slot *slots, nfds_t n, Proc *p, int what, int other) {
  static const short events[] = {POLLIN, POLLIN, POLLOUT, POLLIN};
  fds[n].fd = what == 0 ? p->out.fd : what == 1 ? p->err.fd : what == 2 ? p->in_fd : p->pidfd;
  fds[n].events = events[what];
  fds[n].revents = 0;
  slots[n].p = p;
  slots[n].what = what;
  slots[n].other = other;
  return n + 1;
}

/*
** Pushes an array of the other live handles that still have pipes open, so that waiting on
** one child keeps the others' output flowing (parallel builds do not stall on a full pipe).
** Returns how many; their Proc pointers go to *out (a scratch userdata, also pushed).
*/
static int gather_others(lua_State *L, Proc *self, Proc ***out) {
  int n = 0, i, live;
  Proc **arr;
  lua_newtable(L);                                   /* [.., others] */
  lua_getfield(L, LUA_REGISTRYINDEX, PROC_MT ".live");  /* [.., others, live] */
  live = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, live) != 0) {                   /* [.., others, live, key, true] */
    Proc *o;
    lua_pop(L, 1);
    o = (Proc *)luaL_testudata(L, -1, PROC_MT);
    if (o != NULL && o != self && o->pid > 0 &&
        (o->out.fd >= 0 || o->err.fd >= 0 || o->in_fd >= 0)) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, live - 1, ++n);
    }
  }
  lua_pop(L, 1);                                     /* [.., others] */
  arr = (Proc **)lua_newuserdatauv(L, sizeof(Proc *) * (size_t)(n + 1), 0);  /* [.., others, arr] */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    arr[i] = (Proc *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  *out = arr;
  return n;
}

/*
** handle:wait([timeout]) -> result. Feeds stdin, reads both streams, and returns when the
** child has exited and its pipes are done. On timeout the group gets TERM then KILL.
** Meanwhile the pipes of the other running handles are read too (into their own buffers).
** Ctrl-C: the group is killed and reaped, then the "interrupted" error is raised.
*/
static int proc_wait(lua_State *L) {
  Proc *p = check_open(L);
  double timeout = luaL_optnumber(L, 2, p->timeout), deadline = timeout >= 0 ? now() + timeout : -1;
  double idle_since = -1;
  sigset_t old, waitmask;
  Proc **others;
  struct pollfd *fds;
  Slot *slots;
  int nothers, others_idx;
  lua_settop(L, 2);
  if (p->pid == 0) return luaL_error(L, "%s: nothing was started", p->what);
  nothers = gather_others(L, p, &others);            /* [h, timeout, others, arr] */
  others_idx = 3;
  fds = (struct pollfd *)lua_newuserdatauv(L, sizeof(struct pollfd) * (size_t)(4 + 3 * nothers), 0);
  slots = (Slot *)lua_newuserdatauv(L, sizeof(Slot) * (size_t)(4 + 3 * nothers), 0);
  block_interrupts(&old, &waitmask);
  for (;;) {
    nfds_t n = 0, i;
    int ms = -1, r, k;
    if (relua_interrupted()) {
      kill_group(p, 0.5);
      close_fd(&p->out.fd);
      close_fd(&p->err.fd);
      close_fd(&p->in_fd);
      sigprocmask(SIG_SETMASK, &old, NULL);
      return relua_raise_interrupt(L);
    }
    if (!p->reaped) reap(p, WNOHANG);
    if (p->reaped && p->out.fd < 0 && p->err.fd < 0) break;
    if (!p->reaped && deadline >= 0 && now() >= deadline) {
      p->timed_out = 1;
      kill_group(p, KILL_GRACE);
      continue;
    }
    if (p->out.fd >= 0) n = add_slot(fds, slots, n, p, 0, 0);
    if (p->err.fd >= 0) n = add_slot(fds, slots, n, p, 1, 0);
    if (p->in_fd >= 0 && !p->reaped) n = add_slot(fds, slots, n, p, 2, 0);
    else close_fd(&p->in_fd);
    if (!p->reaped && p->pidfd >= 0) n = add_slot(fds, slots, n, p, 3, 0);
    for (k = 1; k <= nothers; k++) {
      Proc *o = others[k];
      if (o->out.fd >= 0) n = add_slot(fds, slots, n, o, 0, k);
      if (o->err.fd >= 0) n = add_slot(fds, slots, n, o, 1, k);
      if (o->in_fd >= 0) n = add_slot(fds, slots, n, o, 2, k);
    }
    if (p->reaped) {
      /* Done: what is still open belongs to a grandchild that outlives it. Read while
         data comes, stop after DRAIN_IDLE ms of silence. */
      if (idle_since < 0) idle_since = now();
      ms = DRAIN_IDLE - (int)((now() - idle_since) * 1000);
      if (deadline >= 0 && now() >= deadline) {  /* a grandchild that outlived the timeout */
        p->timed_out = 1;
        signal_child(p, SIGKILL);
        ms = 0;
      }
      if (ms <= 0) {
        show(L, p, &p->out, 1, NULL, 0, 2);
        show(L, p, &p->err, 2, NULL, 0, 2);
        close_fd(&p->out.fd);
        close_fd(&p->err.fd);
        break;
      }
    } else {
      if (p->pidfd < 0) ms = 10;
      if (deadline >= 0) {
        int left = (int)((deadline - now()) * 1000) + 1;
        if (ms < 0 || left < ms) ms = left;
      }
    }
    if ((p->out.mask.len > 0 || p->err.mask.len > 0) && (ms < 0 || ms > MASK_IDLE))
      ms = MASK_IDLE;  /* a partial line held by the masker is shown after a pause */
    {
      struct timespec ts, *tp = NULL;
      if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (long)(ms % 1000) * 1000000L;
        tp = &ts;
      }
      r = ppoll(fds, n, tp, &waitmask);
    }
    if (r < 0) continue;  /* EINTR: the loop looks at the Ctrl-C flag first */
    if (r == 0) {
      show(L, p, &p->out, 1, NULL, 0, 1);
      show(L, p, &p->err, 2, NULL, 0, 1);
    }
    for (i = 0; i < n; i++) {
      Slot *sl = &slots[i];
      if (fds[i].revents == 0) continue;
      if (sl->what == 0 || sl->what == 1) {
        Stream *st = sl->what == 0 ? &sl->p->out : &sl->p->err;
        if (st->fd != fds[i].fd) continue;  /* closed meanwhile */
        if (drain(L, sl->p, st, sl->what == 0 ? 1 : 2) > 0 && sl->other == 0) idle_since = -1;
      } else if (sl->what == 2 && sl->p->in_fd == fds[i].fd) {
        if (sl->other == 0) feed(L, p, 1);
        else {
          lua_rawgeti(L, others_idx, sl->other);
          feed(L, sl->p, lua_gettop(L));
          lua_pop(L, 1);
        }
      }
    }
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  close_fd(&p->in_fd);
  push_result(L, p);
  return 1;
}

static int proc_pid(lua_State *L) {
  Proc *p = check_open(L);
  lua_pushinteger(L, p->pid);
  return 1;
}

static const struct { const char *name; int sig; } signals[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
  {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
  {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
  {NULL, 0}
};

/* handle:kill([sig]) -> true | nil, msg, code. sig: "TERM" (default), "SIGKILL", 9...
   Signals the whole group. */
static int proc_kill(lua_State *L) {
  Proc *p = check_open(L);
  int sig = SIGTERM;
  if (lua_type(L, 2) == LUA_TNUMBER) sig = (int)luaL_checkinteger(L, 2);
  else if (!lua_isnoneornil(L, 2)) {
    const char *name = luaL_checkstring(L, 2);
    int i;
    if (strncmp(name, "SIG", 3) == 0) name += 3;
    for (i = 0; signals[i].name && strcmp(signals[i].name, name) != 0; i++) {}
    if (signals[i].name == NULL) return luaL_argerror(L, 2, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, 2)));
    sig = signals[i].sig;
  }
  if (p->reaped) return relua_fail(L, "ESRCH", "%s: process %d has already exited", p->what, (int)p->pid);
  if (signal_child(p, sig) != 0) return relua_oserror(L, p->what, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

/* handle:running() -> boolean (without blocking). */
static int proc_running(lua_State *L) {
  Proc *p = check_open(L);
  lua_pushboolean(L, !reap(p, WNOHANG));
  return 1;
}

static int proc_tostring(lua_State *L) {
  Proc *p = check_proc(L, 1);
  if (p->pid < 0) lua_pushliteral(L, "relua.proc.Process (closed)");
  else lua_pushfstring(L, "relua.proc.Process (pid %d)", (int)p->pid);
  return 1;
}

/* ---------------------------------------------------------------- functions */

static int f_clock(lua_State *L) {
  lua_pushnumber(L, now());
  return 1;
}

static int f_pid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

/* core.sleep(seconds): waits; Ctrl-C ends the wait with the interrupted error. */
static int f_sleep(lua_State *L) {
  double end = now() + (double)luaL_checknumber(L, 1);
  sigset_t old, waitmask;
  block_interrupts(&old, &waitmask);
  for (;;) {
    double left = end - now();
    struct timespec ts;
    if (relua_interrupted()) {
      sigprocmask(SIG_SETMASK, &old, NULL);
      return relua_raise_interrupt(L);
    }
    if (left <= 0) break;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    ppoll(NULL, 0, &ts, &waitmask);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  return 0;
}

static int f_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.environ() -> {NAME = value, ...} of this process. */
static int f_environ(lua_State *L) {
  char **e;
  lua_newtable(L);
  for (e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (eq == NULL) continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  return 1;
}

static const luaL_Reg funcs[] = {
  {"spawn", proc_spawn},
  {"clock", f_clock},
  {"pid", f_pid},
  {"sleep", f_sleep},
  {"isatty", f_isatty},
  {"environ", f_environ},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"wait", proc_wait},
  {"pid", proc_pid},
  {"kill", proc_kill},
  {"running", proc_running},
  {"close", proc_close},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__gc", proc_close},
  {"__close", proc_close},
  {"__tostring", proc_tostring},
  {"__index", NULL},
  {NULL, NULL}
};


int luaopen_relua_core_proc(lua_State *L) {
  int i;
  if (luaL_newmetatable(L, PROC_MT)) {
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_getsubtable(L, LUA_REGISTRYINDEX, PROC_MT ".live") == 0) {
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_newtable(L);
  for (i = 0; signals[i].name; i++) {
    lua_pushinteger(L, signals[i].sig);
    lua_setfield(L, -2, signals[i].name);
  }
  lua_setfield(L, -2, "signals");
  return 1;
}
