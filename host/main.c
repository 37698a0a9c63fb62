/*
** main.c: the relua entry point. Shaped after lua.c: a Lua state, the host modules in
** package.preload, the embedded lib/ behind a searcher, the interpreter's options, and
** everything run under lua_pcall with a message handler. Policy (subcommands, recipes,
** the REPL) is Lua in lib/relua/.
*/
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lualib.h"
#include "relua.h"

/* The host's C modules, found by tools/modules.sh. */
#ifndef RELUA_MODULES_H
#define RELUA_MODULES_H "modules.h"
#endif
#ifndef RELUA_LAZY_H
#define RELUA_LAZY_H "lazy.h"
#endif

#define RELUA_MODULE(n, stem) int luaopen_relua_##n(lua_State *L);
#include RELUA_MODULES_H
#undef RELUA_MODULE

/* lua-cjson, linked in from Debian's liblua5.4-cjson. */
int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

static const luaL_Reg host_modules[] = {
#define RELUA_MODULE(n, stem) {#n, luaopen_relua_##n},
#include RELUA_MODULES_H
#undef RELUA_MODULE
  {NULL, NULL}
};

/*
** Lazy modules (see the Makefile): shared objects loaded on the first require of their
** module, so start-up does not load libcurl or libgit2. A single-file build carries them
** inside the binary (relua_lazy_STEM_start..end, from tools/lazy.sh); otherwise they are
** files in ../lib/relua beside the binary, or in the LIBDIR compiled in.
*/
typedef struct Lazy {
  const char *name;     /* "core_http": the module relua.core.http */
  const char *stem;     /* "http": the file http.so */
  const unsigned char *start, *end;  /* the copy carried inside the binary, or NULL */
} Lazy;

/* Weak: absent (NULL) unless the binary was linked with the embedded copies. */
#define RELUA_LAZY(n, stem) extern const unsigned char relua_lazy_##stem##_start[] \
    __attribute__((weak)), relua_lazy_##stem##_end[] __attribute__((weak));
#include RELUA_LAZY_H
#undef RELUA_LAZY

static const Lazy lazy_modules[] = {
#define RELUA_LAZY(n, stem) {#n, #stem, relua_lazy_##stem##_start, relua_lazy_##stem##_end},
#include RELUA_LAZY_H
#undef RELUA_LAZY
  {NULL, NULL, NULL, NULL}
};

#ifndef RELUA_LIBDIR
#define RELUA_LIBDIR "/usr/local/lib/relua"
#endif
#ifndef RELUA_DATADIR
#define RELUA_DATADIR "/usr/local/share/relua"
#endif

/* Registry key of the folder the lazy modules are looked for first: ../lib/relua of the binary. */
#define LAZY_DIR_KEY "relua.lazy.dir"

#define EXIT_USAGE 2

static const char *progname = "relua";

static const char usage_text[] =
  "usage: relua [options] [script [args]]\n"
  "       relua RECIPE TICKET [--from=PHASE] [--dry-run]\n"
  "       relua COMMAND [args]      (relua help lists the commands)\n"
  "options:\n"
  "  -e chunk       run the string 'chunk'\n"
  "  -l g=mod       require library 'mod' into global 'g'\n"
  "  -l mod         require library 'mod' into global 'mod' (its last dotted part)\n"
  "  -i             enter the REPL after running 'script'\n"
  "  -v, --version  show version information\n"
  "  -h, --help     show this help\n"
  "  --             stop handling options\n"
  "  -              run stdin and stop handling options\n"
  "with no script: the REPL on a terminal, else the script read from stdin\n";

/* ---------------------------------------------------------------- warnings */

/* Lua 5.4 warnings (an error in __gc among them) are shown, never dropped. */
typedef struct Warn {
  int on;      /* "@on" / "@off" */
  int cont;    /* in the middle of a multi-part message */
  int fatal;   /* RELUA_WARNINGS_FATAL: any warning makes the exit status 1 */
  int count;
} Warn;

static void warnf(void *ud, const char *msg, int tocont) {
  Warn *w = (Warn *)ud;
  if (!w->cont && *msg == '@') {  /* control message */
    if (strcmp(msg, "@on") == 0) w->on = 1;
    else if (strcmp(msg, "@off") == 0) w->on = 0;
    return;
  }
  if (!w->on && !w->fatal) return;
  if (!w->cont) {
    fputs("relua: warning: ", stderr);
    w->count++;
  }
  fputs(msg, stderr);
  w->cont = tocont;
  if (!tocont) fputc('\n', stderr);
  fflush(stderr);
}

/* ---------------------------------------------------------------- errors */

/* A structured error is kept as it is; anything else becomes a message with a traceback. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "message");
    if (lua_type(L, -1) == LUA_TSTRING) {
      if (getenv("RELUA_TRACE") != NULL) {  /* for developers: where was it raised? */
        luaL_traceback(L, L, NULL, 1);
        lua_setfield(L, 1, "traceback");
      }
      lua_settop(L, 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Writes the line s to stderr with secrets masked (host/secret.c). */
static void put_masked(lua_State *L, const char *s) {
  size_t n;
  const char *m;
  if (s == NULL) s = "(no message)";
  m = relua_mask(L, s, strlen(s), &n);
  fwrite(m, 1, n, stderr);
  fputc('\n', stderr);
  lua_pop(L, 1);
}

/* Prints the error on top of the stack (secrets masked) and returns the exit status it calls for. */
static int report(lua_State *L) {
  int code = 1;
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    lua_getfield(L, t, "exit");
    if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
    lua_getfield(L, t, "message");
    fprintf(stderr, "%s: ", progname);
    put_masked(L, lua_tostring(L, -1));
    lua_getfield(L, t, "hint");
    if (lua_type(L, -1) == LUA_TSTRING) put_masked(L, lua_tostring(L, -1));
    lua_getfield(L, t, "traceback");
    if (lua_type(L, -1) == LUA_TSTRING) put_masked(L, lua_tostring(L, -1));
    lua_settop(L, t - 1);
  } else {
    fprintf(stderr, "%s: ", progname);
    put_masked(L, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  fflush(stderr);
  return code;
}

/* Calls the function below its narg arguments; 0 or an exit status (error printed). */
static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  int status;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status == LUA_OK ? 0 : report(L);
}

/* ---------------------------------------------------------------- loading */

/* package.searchers entry: the Lua library carried inside the binary. */
static int embedded_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const relua_Embedded *e;
  for (e = relua_embedded; e->name != NULL; e++) {
    if (strcmp(e->name, name) == 0) {
      const char *chunk = lua_pushfstring(L, "@%s", e->path);
      if (luaL_loadbuffer(L, e->source, e->len, chunk) != LUA_OK)
        return lua_error(L);
      lua_pushstring(L, e->path);  /* second argument to the loader */
      return 2;
    }
  }
  lua_pushfstring(L, "no embedded module '%s'", name);
  return 1;
}

/* Pushes "relua." .. name with '_' read as '.': core_fs -> relua.core.fs */
static void push_module_name(lua_State *L, const char *name) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "relua.");
  for (; *name; name++) luaL_addchar(&b, *name == '_' ? '.' : *name);
  luaL_pushresult(&b);
}

/*
** The binary's own path, symlinks resolved, pushed as a string (or nil): /proc/self/exe,
** else the file the kernel executed (AT_EXECFN), else argv[0] (searched in PATH when it
** has no '/'). Found at start-up, before anything can change the working directory.
*/
static void push_self_path(lua_State *L, const char *argv0) {
  char buf[PATH_MAX], *real;
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  const char *name = (const char *)getauxval(AT_EXECFN);
  if (n > 0) {
    buf[n] = '\0';
    lua_pushstring(L, buf);
    return;
  }
  if (name == NULL || strchr(name, '/') == NULL) name = argv0;
  if (name != NULL && strchr(name, '/') == NULL) {  /* a bare name: search PATH */
    const char *path = getenv("PATH"), *p;
    for (p = path; p != NULL && *p != '\0'; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
      size_t len = strcspn(p, ":");
      if (len > 0 && (size_t)snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name) < sizeof buf
          && access(buf, X_OK) == 0) {
        name = buf;
        break;
      }
    }
  }
  real = name != NULL ? realpath(name, NULL) : NULL;
  if (real == NULL) {
    lua_pushnil(L);
    return;
  }
  lua_pushstring(L, real);
  free(real);
}

/*
** Records where the binary is (registry RELUA_SELF_KEY: relua.core.version.self, for the
** data in ../share/relua) and the folder of the lazy modules beside it (LAZY_DIR_KEY).
*/
static void find_self(lua_State *L, const char *argv0) {
  const char *self, *slash;
  push_self_path(L, argv0);                 /* [path|nil] */
  self = lua_tostring(L, -1);
  if (self != NULL && (slash = strrchr(self, '/')) != NULL) {
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RELUA_SELF_KEY);
    lua_pushfstring(L, "%s/../lib/relua", lua_pushlstring(L, self, (size_t)(slash - self)));
    lua_setfield(L, LUA_REGISTRYINDEX, LAZY_DIR_KEY);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/*
** Writes a carried copy to a file that dlopen can read and opens it: a memfd named by
** /proc/self/fd, or where that is unavailable (no /proc, memfd_create refused), a
** temporary file removed as soon as it is loaded. Returns the handle, or NULL with the
** reason pushed.
*/
static int write_copy(int fd, const Lazy *m) {
  const unsigned char *p = m->start;
  while (p < m->end) {
    ssize_t w = write(fd, p, (size_t)(m->end - p));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
  }
  return 0;
}

static void *open_carried(lua_State *L, const Lazy *m) {
  char path[PATH_MAX];
  const char *tmp = getenv("TMPDIR");
  void *h = NULL;
  int fd = memfd_create(m->stem, MFD_CLOEXEC);
  if (fd >= 0 && write_copy(fd, m) == 0) {
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    /* The memfd stays open for the life of the process: dlopen knows objects by path,
       and a closed fd's number, reused for the next lazy module, would name this one. */
    if (access(path, R_OK) == 0 && (h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) != NULL)
      return h;
  }
  if (fd >= 0) close(fd);
  if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
  snprintf(path, sizeof path, "%s/relua-%s-XXXXXX", tmp, m->stem);
  fd = mkstemp(path);
  if (fd < 0) {
    lua_pushfstring(L, "cannot write a copy of %s.so to %s: %s", m->stem, tmp, strerror(errno));
    return NULL;
  }
  if (write_copy(fd, m) != 0) {
    lua_pushfstring(L, "cannot write %s: %s", path, strerror(errno));
  } else if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) == NULL) {
    lua_pushfstring(L, "%s", dlerror());
  }
  close(fd);
  unlink(path);
  return h;
}

/* Opens STEM.so from the folder beside the binary, then LIBDIR; NULL with the reason pushed. */
static void *open_file(lua_State *L, const Lazy *m) {
  const char *dirs[2];
  luaL_Buffer why;
  int i;
  void *h;
  lua_getfield(L, LUA_REGISTRYINDEX, LAZY_DIR_KEY);  /* [dir|nil] */
  dirs[0] = lua_tostring(L, -1);
  dirs[1] = RELUA_LIBDIR;
  luaL_buffinit(L, &why);
  for (i = 0; i < 2; i++) {
    const char *path;
    if (dirs[i] == NULL) continue;
    path = lua_pushfstring(L, "%s/%s.so", dirs[i], m->stem);
    if (access(path, F_OK) == 0) {
      /* RTLD_GLOBAL: the library's symbols are visible to the host (relua_need_curl). */
      h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
      lua_pop(L, 1);
      if (h != NULL) {
        luaL_pushresult(&why);
        lua_pop(L, 2);
        return h;
      }
      luaL_addstring(&why, dlerror());
    } else {
      luaL_addvalue(&why);
      luaL_addstring(&why, ": not found");
    }
    luaL_addstring(&why, "; ");
  }
  luaL_addstring(&why, "install relua with `make install`, or build the single-file `make single`");
  luaL_pushresult(&why);                    /* [dir|nil, why] */
  lua_remove(L, -2);
  return NULL;
}

/*
** The loader of a lazy module. The handle is kept in the registry, so a module required
** again (busted clears package.loaded between spec files) reuses the loaded object. It is
** never closed: userdata of the module may outlive a reload of package.loaded.
*/
static int lazy_loader(lua_State *L) {
  const Lazy *m = (const Lazy *)lua_touserdata(L, lua_upvalueindex(1));
  char symbol[96];
  lua_CFunction open;
  void *h;
  lua_pushfstring(L, "relua.lazy.%s", m->stem);
  if (lua_rawget(L, LUA_REGISTRYINDEX) == LUA_TLIGHTUSERDATA)
    h = lua_touserdata(L, -1);
  else {
    h = m->start != NULL ? open_carried(L, m) : open_file(L, m);
    if (h == NULL)
      return luaL_error(L, "cannot load module 'relua.%s': %s", m->stem, lua_tostring(L, -1));
    lua_pushfstring(L, "relua.lazy.%s", m->stem);
    lua_pushlightuserdata(L, h);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 1);
  snprintf(symbol, sizeof symbol, "luaopen_relua_%s", m->name);
  *(void **)(&open) = dlsym(h, symbol);  /* the POSIX way to take a function pointer */
  if (open == NULL)
    return luaL_error(L, "cannot load module 'relua.%s': no %s", m->stem, symbol);
  return open(L);
}

/*
** The host's own require, for the enforcing core (relua_open_owned in store.c): runs the
** opener of a C module, linked or lazy, found by its name in the tables above, without
** package.loaded, package.preload or any Lua a script could replace. Kept in the registry
** as "relua.owned".
*/
static int owned_require(lua_State *L) {
  const char *module = luaL_checkstring(L, 1);
  const luaL_Reg *m;
  const Lazy *z;
  luaL_Buffer b;
  if (strncmp(module, "relua.", 6) != 0) return luaL_error(L, "no host module %s", module);
  luaL_buffinit(L, &b);
  for (module += 6; *module; module++) luaL_addchar(&b, *module == '.' ? '_' : *module);
  luaL_pushresult(&b);                                     /* [module, name] */
  for (m = host_modules; m->name != NULL; m++) {
    if (strcmp(m->name, lua_tostring(L, 2)) == 0) {
      lua_pushcfunction(L, m->func);
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
      return 1;
    }
  }
  for (z = lazy_modules; z->name != NULL; z++) {
    if (strcmp(z->name, lua_tostring(L, 2)) == 0) {
      lua_pushlightuserdata(L, (void *)z);
      lua_pushcclosure(L, lazy_loader, 1);
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
      return 1;
    }
  }
  return luaL_error(L, "no host module %s in this build", lua_tostring(L, 1));
}

static void open_loaders(lua_State *L, const char *argv0) {
  const luaL_Reg *m;
  const Lazy *z;
  const char *dev = getenv("RELUA_LIB");
  lua_pushcfunction(L, owned_require);
  lua_setfield(L, LUA_REGISTRYINDEX, "relua.owned");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);  /* [preload] */
  for (m = host_modules; m->name != NULL; m++) {
    push_module_name(L, m->name);          /* [preload, name] */
    lua_pushcfunction(L, m->func);
    lua_settable(L, -3);
  }
  find_self(L, argv0);
  lua_pushliteral(L, RELUA_DATADIR);
  lua_setfield(L, LUA_REGISTRYINDEX, RELUA_DATADIR_KEY);
  for (z = lazy_modules; z->name != NULL; z++) {
    push_module_name(L, z->name);          /* [preload, name] */
    lua_pushlightuserdata(L, (void *)z);
    lua_pushcclosure(L, lazy_loader, 1);
    lua_settable(L, -3);
  }
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pushcfunction(L, luaopen_cjson_safe);
  lua_setfield(L, -2, "cjson.safe");
  lua_pop(L, 1);

  lua_getglobal(L, "package");             /* [package] */
  if (dev != NULL && *dev != '\0') {
    /* Development: load lib/ from the source tree instead of the binary. */
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dev, dev, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
  } else {
    lua_getfield(L, -1, "searchers");      /* [package, searchers] */
    lua_Integer i, n = luaL_len(L, -1);
    for (i = n; i >= 2; i--) {             /* make room at 2, right after preload */
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------- options */

typedef struct Options {
  int script;    /* index of the script in argv, 0 when none */
  int interactive, version, help, has_e, stdin_script;
} Options;

/* Returns 0, or the index of the offending argument (negative for a missing value). */
static int collect(int argc, char **argv, Options *o) {
  int i;
  memset(o, 0, sizeof *o);
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') { o->script = i; return 0; }
    if (strcmp(a, "-") == 0) { o->script = i; o->stdin_script = 1; return 0; }
    if (strcmp(a, "--") == 0) {
      if (i + 1 < argc) o->script = i + 1;
      return 0;
    }
    if (strcmp(a, "-i") == 0) o->interactive = 1;
    else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) o->version = 1;
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) o->help = 1;
    else if (strncmp(a, "-e", 2) == 0 || strncmp(a, "-l", 2) == 0) {
      if (a[2] == '\0') {
        if (++i >= argc || argv[i][0] == '-') return -(i < argc ? i : i - 1);
      }
      if (a[1] == 'e') o->has_e = 1;
    } else
      return i;
  }
  return 0;
}

/* arg table as in lua.c: arg[0] the script, negative indices the interpreter's own. */
static void create_arg(lua_State *L, char **argv, int argc, int script) {
  int i, narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/*
** -l NAME=MOD: NAME = require "MOD", as lua 5.4.7 does. -l MOD: the global is MOD's last
** dotted part without a "-suffix" (lua.c's LUA_IGMARK): -l relua.json binds json.
*/
static int dolibrary(lua_State *L, const char *arg) {
  const char *eq = strchr(arg, '='), *mod, *glob, *dot, *mark;
  int status;
  if (eq != NULL) {
    glob = lua_pushlstring(L, arg, (size_t)(eq - arg));  /* [name] */
    mod = eq + 1;
  } else {
    mod = arg;
    dot = strrchr(arg, '.');
    glob = dot != NULL ? dot + 1 : arg;
    mark = strchr(glob, '-');  /* LUA_IGMARK of lua 5.4 */
    glob = lua_pushlstring(L, glob, mark != NULL ? (size_t)(mark - glob) : strlen(glob));
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  status = docall(L, 1, 1);                 /* [name, module] */
  if (status == 0) lua_setglobal(L, glob);
  lua_pop(L, 1);
  return status;
}

static int run_options(lua_State *L, int argc, char **argv) {
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int status = 0;
    if (a[0] != '-' || strcmp(a, "-") == 0 || strcmp(a, "--") == 0) break;
    if (a[1] != 'e' && a[1] != 'l') continue;
    v = a[2] != '\0' ? a + 2 : argv[++i];
    if (a[1] == 'e') {
      if (luaL_loadbuffer(L, v, strlen(v), "=(command line)") != LUA_OK) {
        status = report(L);
      } else
        status = docall(L, 0, 0);
    } else
      status = dolibrary(L, v);
    if (status != 0) return status;
  }
  return 0;
}

/* Calls require(mod)[fn](args...) where args are argv[first..argc-1]; an exit status. */
static int call_lib(lua_State *L, const char *mod, const char *fn,
                    char **argv, int first, int argc) {
  int i, status;
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  status = docall(L, 1, 1);
  if (status != 0) return status;
  lua_getfield(L, -1, fn);                  /* [mod, fn] */
  lua_remove(L, -2);
  luaL_checkstack(L, argc - first + 1, "too many arguments");  /* a script given 200 wheels */
  for (i = first; i < argc; i++) lua_pushstring(L, argv[i]);
  status = docall(L, argc - first, 1);
  if (status != 0) return status;
  /* A library entry point may return an exit status. */
  status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  return status;
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  Options o;
  int bad, status = 0;

  luaL_checkversion(L);
  luaL_openlibs(L);
  open_loaders(L, argv[0]);
  relua_sigint_install(L);

  bad = collect(argc, argv, &o);
  if (bad != 0) {
    if (bad < 0) fprintf(stderr, "%s: '%s' needs an argument\n", progname, argv[-bad]);
    else fprintf(stderr, "%s: unrecognized option '%s'\n", progname, argv[bad]);
    fputs(usage_text, stderr);
    lua_pushinteger(L, EXIT_USAGE);
    return 1;
  }
  if (o.help) {
    fputs(usage_text, stdout);
    lua_pushinteger(L, 0);
    return 1;
  }
  create_arg(L, argv, argc, o.script ? o.script : 0);
  if (o.version) status = call_lib(L, "relua.cli", "main", (char *[]){"version"}, 0, 1);
  if (status == 0) status = run_options(L, argc, argv);
  if (status == 0 && o.script) {
    if (o.stdin_script) {
      /* relua - args: the script comes from stdin */
      status = call_lib(L, "relua.cli", "script", argv, o.script, argc);
    } else
      status = call_lib(L, "relua.cli", "main", argv, o.script, argc);
  }
  if (status == 0) {
    if (o.interactive)
      status = call_lib(L, "relua.cli", "repl", argv, 0, 0);
    else if (!o.script && !o.has_e && !o.version) {
      if (isatty(STDIN_FILENO))
        status = call_lib(L, "relua.cli", "repl", argv, 0, 0);
      else {
        char *dash[] = {"-"};
        status = call_lib(L, "relua.cli", "script", dash, 0, 1);
      }
    }
  }
  lua_pushinteger(L, status);
  return 1;
}

int main(int argc, char **argv) {
  Warn w = {1, 0, 0, 0};
  int status;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
    return EXIT_FAILURE;
  }
  w.fatal = getenv("RELUA_WARNINGS_FATAL") != NULL;
  lua_setwarnf(L, warnf, &w);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    status = EXIT_FAILURE;
  } else
    status = (int)lua_tointeger(L, -1);
  lua_close(L);  /* runs the __gc of what is left; their warnings still count */
  relua_sigint_restore();
  relua_global_shutdown();
  if (status == 0 && w.fatal && w.count > 0) status = EXIT_FAILURE;
  return status;
}
