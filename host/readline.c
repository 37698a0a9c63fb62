/*
** readline.c: GNU readline for the REPL (relua.core.readline): one line with editing,
** history entries, Tab completion through a Lua function, and Ctrl-C that cancels the line.
** The history file, completion candidates and the prompt loop are Lua (lib/relua/repl.lua).
**
** readline runs through its callback interface with our own SIGINT handler, so that Ctrl-C
** at the prompt returns to Lua (as `false`) instead of killing the process or being
** remembered as an interrupt for the next Lua instruction. Nothing may raise while
** readline owns the terminal: the Lua completer runs under lua_pcall, and everything it
** allocates happens inside that protected call.
*/
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "relua.h"

/*
** readline is process-wide state with callbacks that carry no user data, and signal handlers
** reach nothing else: these statics live only for the duration of one l_readline call.
*/
static lua_State *rl_L = NULL;            /* the state whose completer runs */
static volatile sig_atomic_t got_sigint = 0;
static char *got_line = NULL;             /* malloc'd by readline */
static int got_done = 0;                  /* a line (or EOF) arrived */
static char completer_key;                /* registry key of the Lua completer */

static void on_line(char *line) {
  got_line = line;
  got_done = 1;
  rl_callback_handler_remove();  /* no new prompt: control goes back to Lua */
}

static void on_sigint(int sig) {
  (void)sig;
  got_sigint = 1;
}

/* ---------------------------------------------------------------- completion */

typedef struct Completion {
  const char *text;
  int start, end;
  char **list;   /* malloc'd candidates, NULL-terminated */
  size_t next;   /* generator position */
} Completion;

static Completion *cur_completion = NULL;

/* Under lua_pcall: calls completer(text, line, start, stop), copies the strings it returns. */
static int complete_protected(lua_State *L) {
  Completion *c = (Completion *)lua_touserdata(L, 1);
  lua_Integer i, n;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &completer_key);  /* [c, fn] */
  lua_pushstring(L, c->text);
  lua_pushstring(L, rl_line_buffer);
  lua_pushinteger(L, c->start + 1);
  lua_pushinteger(L, c->end);
  lua_call(L, 4, 1);                                   /* [c, candidates] */
  if (!lua_istable(L, -1)) return 0;
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n <= 0) return 0;
  /* From here on nothing raises: raw reads of strings, then malloc. */
  c->list = (char **)calloc((size_t)n + 1, sizeof(char *));
  if (c->list == NULL) return 0;
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) == LUA_TSTRING) {
      s = lua_tolstring(L, -1, &len);
      c->list[c->next] = (char *)malloc(len + 1);
      if (c->list[c->next] != NULL) {
        memcpy(c->list[c->next], s, len + 1);
        c->next++;
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

static char *generate(const char *text, int state) {
  (void)text;
  (void)state;
  if (cur_completion == NULL || cur_completion->list == NULL) return NULL;
  if (cur_completion->list[cur_completion->next] == NULL) return NULL;  /* stay on the end */
  /* readline frees what we return: hand over the malloc'd strings one by one */
  return cur_completion->list[cur_completion->next++];
}

static char **attempt_completion(const char *text, int start, int end) {
  Completion c;
  char **matches = NULL;
  size_t i;
  rl_attempted_completion_over = 1;  /* never fall back to file names */
  rl_completion_append_character = '\0';  /* readline resets it before each attempt */
  if (rl_L == NULL) return NULL;
  memset(&c, 0, sizeof c);
  c.text = text;
  c.start = start;
  c.end = end;
  if (!lua_checkstack(rl_L, 8)) return NULL;
  lua_pushcfunction(rl_L, complete_protected);        /* no allocation: light C function */
  lua_pushlightuserdata(rl_L, &c);
  if (lua_pcall(rl_L, 1, 0, 0) != LUA_OK) lua_pop(rl_L, 1);  /* a broken completer: no matches */
  if (c.list != NULL && c.next > 0) {
    c.next = 0;
    cur_completion = &c;
    matches = rl_completion_matches(text, generate);
    cur_completion = NULL;
  }
  if (c.list != NULL) {
    for (i = c.next; c.list[i] != NULL; i++) free(c.list[i]);  /* not handed over */
    free(c.list);
  }
  return matches;
}

/* ---------------------------------------------------------------- reading */

/*
** readline(prompt [, completer]) -> line | nil (end of input) | false (Ctrl-C)
** completer(text, line, start, stop) returns an array of candidates for text, the word
** that ends at the cursor.
*/
static int l_readline(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "> ");
  struct sigaction sa, old;
  sigset_t block, saved_mask, wait_mask;
  int cancelled = 0, eof = 0;
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &completer_key);  /* nil when none */
  rl_L = lua_isnoneornil(L, 2) ? NULL : L;

  rl_catch_signals = 0;               /* our handler below, not readline's */
  rl_attempted_completion_function = attempt_completion;
  rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^#~,[])}";
  rl_basic_quote_characters = "";     /* "fs.read('x<TAB>" completes nothing, not files */

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;                    /* no SA_RESTART: poll returns EINTR */
  got_sigint = 0;
  free(got_line);  /* only if a previous call could not box it (out of memory) */
  got_line = NULL;
  got_done = 0;
  sigaction(SIGINT, &sa, &old);

  /*
  ** SIGINT stays blocked except inside ppoll, which unblocks it atomically: a Ctrl-C that
  ** comes while readline handles a key is seen at the next wait, never lost.
  */
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &saved_mask);
  wait_mask = saved_mask;
  sigdelset(&wait_mask, SIGINT);
  rl_callback_handler_install(prompt, on_line);
  while (!got_done) {
    struct pollfd pfd;
    int r;
    pfd.fd = fileno(rl_instream ? rl_instream : stdin);
    pfd.events = POLLIN;
    pfd.revents = 0;
    r = ppoll(&pfd, 1, NULL, &wait_mask);
    if (got_sigint) {
      cancelled = 1;
      break;
    }
    if (r < 0) {
      if (errno == EINTR) continue;   /* SIGWINCH and friends */
      eof = 1;
      break;
    }
    if (pfd.revents & POLLNVAL) {
      eof = 1;
      break;
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) rl_callback_read_char();
  }
  if (!got_done) {
    /* Ctrl-C or a broken terminal: drop the half-typed line, give the terminal back. */
    rl_free_line_state();
    rl_callback_sigcleanup();
    if (cancelled) rl_echo_signal_char(SIGINT);
    rl_callback_handler_remove();
    rl_crlf();
    fflush(rl_outstream ? rl_outstream : stdout);
  }
  sigprocmask(SIG_SETMASK, &saved_mask, NULL);  /* a late Ctrl-C lands in on_sigint */
  sigaction(SIGINT, &old, NULL);
  rl_L = NULL;
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &completer_key);

  if (cancelled) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (eof || got_line == NULL) {
    lua_pushnil(L);
    return 1;
  }
  {
    /* box the line before anything can raise, so it is freed on every path */
    char **box = (char **)lua_newuserdatauv(L, sizeof(char *), 0);
    *box = got_line;
    got_line = NULL;
    luaL_setmetatable(L, "relua.readline.Line");
    lua_pushstring(L, *box);
    free(*box);
    *box = NULL;
    return 1;
  }
}

static int line_gc(lua_State *L) {
  char **box = (char **)luaL_checkudata(L, 1, "relua.readline.Line");
  free(*box);
  *box = NULL;
  return 0;
}

/* add_history(line): an entry the user can recall with Up / Ctrl-P. */
static int l_add_history(lua_State *L) {
  add_history(luaL_checkstring(L, 1));
  return 0;
}

/* clear_history(): forgets the entries of this process. */
static int l_clear_history(lua_State *L) {
  (void)L;
  clear_history();
  return 0;
}

/* isatty(fd) -> boolean: is stdin (0), stdout (1) or stderr (2) a terminal? */
static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2 expected");
  lua_pushboolean(L, isatty((int)fd));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"readline", l_readline},
  {"add_history", l_add_history},
  {"clear_history", l_clear_history},
  {"isatty", l_isatty},
  {NULL, NULL}
};

int luaopen_relua_core_readline(lua_State *L) {
  if (luaL_newmetatable(L, "relua.readline.Line")) {
    lua_pushcfunction(L, line_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  rl_readline_name = "relua";  /* $if relua in ~/.inputrc */
  luaL_newlib(L, funcs);
  return 1;
}
