/*
** secret.c: the secrets core (relua.core.secret). Everything relua writes (the terminal,
** relua.log, the audit log, the state file, phase output files, error messages and
** tracebacks) goes through relua_mask, which replaces with *** :
**   - the values declared secret (relua.secret.declare), and the values of environment
**     variables whose names say they are credentials (*TOKEN*, *PASSWORD*, *SECRET*,
**     *_KEY, *AUTH* but not *AUTHOR*, ...), read once on first use;
**   - their base64 forms (alone, or inside a Basic "user:value" header in any alignment)
**     and their percent-encoded form;
**   - URL userinfo ("https://user:***@host", or a long token used as the user name);
**   - credential-looking query parameters (?token=***, &api_key=***, sig=***, ...);
**   - the value of an Authorization header, and Bearer/Basic credentials.
** relua_Masker masks a stream written in pieces (a process's output): whole lines are
** masked as they complete; a partial line is held until its newline, an idle flush, or
** the end, and what may be the start of a secret is held even then, so a value split
** across two reads is still masked.
** The values live in a userdata in the registry (never a C global); nothing here calls Lua
** a recipe could replace.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "relua.h"

#define SECRETS_KEY "relua.secret"
#define SECRETS_MT "relua.secret.Secrets"
#define MASK "***"
#define MIN_ENV_LEN 4     /* shorter credential-named env values ("1", "no") are not secrets */
#define MIN_FORM_LEN 6    /* base64 pieces shorter than this would mask noise */
#define MIN_BARE_USER 16  /* a URL user name without a password is masked from this length */
#define LINE_HOLD 65536   /* a partial line longer than this is written without waiting */

extern char **environ;

typedef struct Secrets {
  char **forms;       /* every string to mask (values and their encodings), malloc'd */
  size_t *lens;
  size_t n, cap;
  size_t nvalues;     /* declared + environment values (forms count their encodings too) */
  char **values;      /* the values themselves, for is_secret */
  size_t *vlens;
  size_t nv, vcap;
  int env_read;
} Secrets;

/* ---------------------------------------------------------------- the store */

static void secrets_free(Secrets *S) {
  size_t i;
  for (i = 0; i < S->n; i++) free(S->forms[i]);
  for (i = 0; i < S->nv; i++) free(S->values[i]);
  free(S->forms);
  free(S->lens);
  free(S->values);
  free(S->vlens);
  memset(S, 0, sizeof *S);
}

static int secrets_gc(lua_State *L) {
  secrets_free((Secrets *)luaL_checkudata(L, 1, SECRETS_MT));
  return 0;
}

/* Appends a copy of s to a (strings, lens, n, cap) list; 0, or -1 out of memory. */
static int list_add(char ***strs, size_t **lens, size_t *n, size_t *cap, const char *s, size_t len) {
  char *copy;
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    char **ns = (char **)realloc(*strs, nc * sizeof *ns);
    size_t *nl;
    if (ns == NULL) return -1;
    *strs = ns;
    nl = (size_t *)realloc(*lens, nc * sizeof *nl);
    if (nl == NULL) return -1;
    *lens = nl;
    *cap = nc;
  }
  copy = (char *)malloc(len + 1);
  if (copy == NULL) return -1;
  memcpy(copy, s, len);
  copy[len] = '\0';
  (*strs)[*n] = copy;
  (*lens)[*n] = len;
  (*n)++;
  return 0;
}

static int add_form(Secrets *S, const char *s, size_t len) {
  size_t i;
  if (len == 0) return 0;
  for (i = 0; i < S->n; i++)
    if (S->lens[i] == len && memcmp(S->forms[i], s, len) == 0) return 0;
  return list_add(&S->forms, &S->lens, &S->n, &S->cap, s, len);
}

static const char b64chars[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of src into dst (room for 4*((n+2)/3)); returns the length written. */
static size_t b64(const unsigned char *src, size_t n, char *dst) {
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    dst[o++] = b64chars[src[i] >> 2];
    dst[o++] = b64chars[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
    dst[o++] = b64chars[((src[i + 1] & 15) << 2) | (src[i + 2] >> 6)];
    dst[o++] = b64chars[src[i + 2] & 63];
  }
  if (i < n) {
    dst[o++] = b64chars[src[i] >> 2];
    if (i + 1 < n) {
      dst[o++] = b64chars[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
      dst[o++] = b64chars[(src[i + 1] & 15) << 2];
    } else {
      dst[o++] = b64chars[(src[i] & 3) << 4];
      dst[o++] = '=';
    }
    dst[o++] = '=';
  }
  return o;
}

/*
** A value and its encodings: itself; its base64 as seen after 0, 1 or 2 bytes of anything
** (so inside "user:value" of a Basic header too: only the characters that depend on the
** value alone); its percent-encoded form. 0, or -1 out of memory.
*/
static int add_value(Secrets *S, const char *v, size_t len) {
  size_t k, i;
  int rc = 0;
  unsigned char *tmp;
  char *enc;
  for (i = 0; i < S->nv; i++)
    if (S->vlens[i] == len && memcmp(S->values[i], v, len) == 0) return 0;
  if (list_add(&S->values, &S->vlens, &S->nv, &S->vcap, v, len) != 0) return -1;
  if (add_form(S, v, len) != 0) return -1;
  tmp = (unsigned char *)malloc(len + 3);
  enc = (char *)malloc(4 * ((len + 5) / 3) + 4);
  if (tmp == NULL || enc == NULL) { free(tmp); free(enc); return -1; }
  for (k = 0; k < 3 && rc == 0; k++) {
    size_t first = (8 * k + 5) / 6;                 /* first char of value bits only */
    size_t last = (8 * (k + len)) / 6;              /* one past the last such char */
    memset(tmp, 0, k);
    memcpy(tmp + k, v, len);
    (void)b64(tmp, k + len, enc);
    if (last > first && last - first >= MIN_FORM_LEN) rc = add_form(S, enc + first, last - first);
  }
  if (rc == 0) {  /* percent-encoded (only when it differs) */
    size_t o = 0;
    char *pct = (char *)malloc(3 * len + 1);
    if (pct == NULL) rc = -1;
    else {
      for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') pct[o++] = (char)c;
        else {
          static const char hex[] = "0123456789ABCDEF";
          pct[o++] = '%';
          pct[o++] = hex[c >> 4];
          pct[o++] = hex[c & 15];
        }
      }
      if (o != len) rc = add_form(S, pct, o);
      free(pct);
    }
  }
  free(tmp);
  free(enc);
  return rc;
}

/* Copies s[0..n) into dst (cap bytes) through f (toupper, tolower); 0 when it does not fit. */
static int fold(char *dst, size_t cap, const char *s, size_t n, int (*f)(int)) {
  size_t i;
  if (n == 0 || n >= cap) return 0;
  for (i = 0; i < n; i++) dst[i] = (char)f((unsigned char)s[i]);
  dst[n] = '\0';
  return 1;
}

/* Does an environment variable's name say it holds a credential? */
static int credential_name(const char *name, size_t n) {
  static const char *const has[] = {"TOKEN", "PASSWORD", "PASSWD", "SECRET", "CREDENTIAL",
                                     "PRIVATE_KEY", "API_KEY", "APIKEY", "ACCESS_KEY", NULL};
  static const char *const ends_not[] = {"_FILE", "_PATH", "_DIR", "_SOCK", "_URL", "_NAME",
                                         "_TYPE", "_ID", "_USER", "_USERNAME", NULL};
  char up[128];
  int j;
  if (n >= sizeof up || !fold(up, sizeof up, name, n, toupper)) return 0;
  for (j = 0; ends_not[j]; j++) {
    size_t m = strlen(ends_not[j]);
    if (n >= m && strcmp(up + n - m, ends_not[j]) == 0) return 0;
  }
  for (j = 0; has[j]; j++)
    if (strstr(up, has[j]) != NULL) return 1;
  /* cppcheck-suppress pointerOutOfBoundsCond ; n < sizeof up, checked above */
  if (n >= 4 && (strcmp(up + n - 4, "_KEY") == 0 || strcmp(up + n - 4, "_PAT") == 0)) return 1;
  {
    const char *a = up;
    while ((a = strstr(a, "AUTH")) != NULL) {  /* AUTH, but not AUTHOR (GIT_AUTHOR_NAME) */
      if (strncmp(a, "AUTHOR", 6) != 0) return 1;
      a += 4;
    }
  }
  return 0;
}

static void read_env(lua_State *L, Secrets *S) {
  char **e;
  S->env_read = 1;
  for (e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    size_t vlen;
    if (eq == NULL || !credential_name(*e, (size_t)(eq - *e))) continue;
    vlen = strlen(eq + 1);
    if (vlen < MIN_ENV_LEN) continue;
    if (strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "false") == 0) continue;
    if (add_value(S, eq + 1, vlen) != 0) luaL_error(L, "secret: not enough memory");
  }
}

/* The secrets of this Lua state, created (and the environment read) on first use. */
static Secrets *secrets(lua_State *L) {
  Secrets *S;
  if (lua_getfield(L, LUA_REGISTRYINDEX, SECRETS_KEY) == LUA_TUSERDATA) {
    S = (Secrets *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return S;
  }
  lua_pop(L, 1);
  S = (Secrets *)lua_newuserdatauv(L, sizeof *S, 0);
  memset(S, 0, sizeof *S);
  if (luaL_newmetatable(L, SECRETS_MT)) {
    lua_pushcfunction(L, secrets_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, SECRETS_KEY);  /* the registry owns it */
  read_env(L, S);
  return S;
}

/* ---------------------------------------------------------------- masking */

typedef struct Range { size_t a, b; } Range;

typedef struct Ranges {
  Range *r;
  size_t n, cap;
  int oom;
} Ranges;

static void hide(Ranges *R, size_t a, size_t b) {
  if (b <= a || R->oom) return;
  if (R->n == R->cap) {
    size_t nc = R->cap ? R->cap * 2 : 16;
    Range *nr = (Range *)realloc(R->r, nc * sizeof *nr);
    if (nr == NULL) { R->oom = 1; return; }
    R->r = nr;
    R->cap = nc;
  }
  R->r[R->n].a = a;
  R->r[R->n].b = b;
  R->n++;
}

static int lower_at(const char *s, size_t n, size_t i, const char *word) {
  size_t k, m = strlen(word);
  if (i + m > n) return 0;
  for (k = 0; k < m; k++)
    if (tolower((unsigned char)s[i + k]) != word[k]) return 0;
  return 1;
}

static int tokchar(unsigned char c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

/* Is a query/form parameter name credential-looking? */
static int credential_param(const char *s, size_t n) {
  static const char *const words[] = {"token", "password", "passwd", "pwd", "secret", "key",
                                      "auth", "signature", "sig", "credential", "session", NULL};
  char low[64];
  int j;
  if (!fold(low, sizeof low, s, n, tolower)) return 0;
  if (strstr(low, "author") != NULL) return 0;
  for (j = 0; words[j]; j++)
    if (strstr(low, words[j]) != NULL) return 1;
  return 0;
}

/* The patterns: URL userinfo, credential query parameters, Authorization values. */
static void find_patterns(const char *s, size_t n, Ranges *R) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == ':' && i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
      size_t j = i + 3, k = j, colon = 0;
      while (k < n && !strchr("/?#@ \t\r\n\"'<>\\`", s[k])) {
        if (s[k] == ':' && colon == 0) colon = k;
        k++;
      }
      if (k < n && s[k] == '@' && k > j) {
        if (colon) hide(R, colon + 1, k);
        else if (k - j >= MIN_BARE_USER) hide(R, j, k);
      }
    } else if (c == '?' || c == '&' || c == ';') {
      size_t j = i + 1, k = j;
      while (k < n && (isalnum((unsigned char)s[k]) || s[k] == '_' || s[k] == '-' || s[k] == '.')) k++;
      if (k < n && s[k] == '=' && credential_param(s + j, k - j)) {
        size_t v = k + 1, e = v;
        while (e < n && !strchr("&# \t\r\n\"'<>;`", s[e])) e++;
        hide(R, v, e);
      }
    } else if ((c == 'a' || c == 'A') && lower_at(s, n, i, "authorization:")) {
      size_t k = i + 14, w, e;
      while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
      w = k;
      while (w < n && !isspace((unsigned char)s[w])) w++;   /* the scheme, or the value */
      e = w;
      while (e < n && (s[e] == ' ' || s[e] == '\t')) e++;
      if (e < n && s[e] != '\r' && s[e] != '\n') {           /* scheme value */
        size_t f = e;
        while (f < n && s[f] != '\r' && s[f] != '\n') f++;
        hide(R, e, f);
      } else hide(R, k, w);
      i = w > i ? w - 1 : i;
    } else if ((c == 'b' || c == 'B') && (lower_at(s, n, i, "bearer ") || lower_at(s, n, i, "basic "))) {
      size_t k = i + (tolower(c) == 'b' && lower_at(s, n, i, "bearer ") ? 7 : 6), e;
      if (i > 0 && isalnum((unsigned char)s[i - 1])) continue;
      while (k < n && s[k] == ' ') k++;
      e = k;
      while (e < n && tokchar((unsigned char)s[e])) e++;
      if (e - k >= 8) hide(R, k, e);
    }
  }
}

static int range_cmp(const void *x, const void *y) {
  const Range *a = (const Range *)x, *b = (const Range *)y;
  return a->a < b->a ? -1 : a->a > b->a ? 1 : 0;
}

/*
** Masks s[0..n). Returns NULL when nothing is to be hidden (or out of memory with *oom
** set), else a malloc'd buffer of *outlen bytes.
*/
static char *mask_core(const Secrets *S, const char *s, size_t n, size_t *outlen, int *oom) {
  Ranges R = {NULL, 0, 0, 0};
  size_t i, o = 0, pos = 0, room;
  char *out;
  *oom = 0;
  for (i = 0; i < S->n; i++) {
    const char *p = s, *end = s + n;
    while ((size_t)(end - p) >= S->lens[i]) {
      const char *hit = (const char *)memmem(p, (size_t)(end - p), S->forms[i], S->lens[i]);
      if (hit == NULL) break;
      hide(&R, (size_t)(hit - s), (size_t)(hit - s) + S->lens[i]);
      p = hit + S->lens[i];
    }
  }
  find_patterns(s, n, &R);
  if (R.oom) { free(R.r); *oom = 1; return NULL; }
  if (R.n == 0) return NULL;
  qsort(R.r, R.n, sizeof *R.r, range_cmp);
  room = n + R.n * sizeof MASK;
  out = (char *)malloc(room);
  if (out == NULL) { free(R.r); *oom = 1; return NULL; }
  for (i = 0; i < R.n; i++) {
    Range r = R.r[i];
    if (r.b <= pos) continue;                /* inside what is already hidden */
    if (r.a < pos) r.a = pos;
    else {
      memcpy(out + o, s + pos, r.a - pos);
      o += r.a - pos;
      memcpy(out + o, MASK, sizeof MASK - 1);
      o += sizeof MASK - 1;
    }
    pos = r.b;
  }
  memcpy(out + o, s + pos, n - pos);
  o += n - pos;
  free(R.r);
  *outlen = o;
  return out;
}

const char *relua_mask(lua_State *L, const char *s, size_t len, size_t *outlen) {
  Secrets *S = secrets(L);
  int oom;
  size_t n;
  char *m = mask_core(S, s, len, &n, &oom);
  const char *r;
  if (oom) luaL_error(L, "secret: not enough memory to mask a message");
  if (m == NULL) n = len;
  r = lua_pushlstring(L, m ? m : s, n);
  free(m);
  if (outlen) *outlen = n;
  return r;
}

/*
** The masker's heart. buf[0..n) is what is pending; emits (malloc'd, *outlen) the part that
** can be written now and keeps the rest in the carry. flush: 0 keep a partial line, 1 write
** the partial line but hold what may begin a secret, 2 write everything.
*/
static char *masker_take(const Secrets *S, relua_Masker *m, char *buf, size_t n, int flush,
                         size_t *outlen) {
  size_t cut = n, keep;
  char *out;
  int oom;
  if (flush == 0) {  /* up to the last newline, unless the partial line is long */
    for (cut = n; cut > 0 && buf[cut - 1] != '\n'; cut--) {}
    if (n - cut > LINE_HOLD) cut = n;
  }
  if (flush < 2 && cut == n) {  /* hold back the longest tail that may begin a secret */
    size_t hold = 0, f;
    for (f = 0; f < S->n; f++) {
      size_t l = S->lens[f] - 1, p;
      for (p = cut > l ? cut - l : 0; p < cut && cut - p > hold; p++)
        if (memcmp(buf + p, S->forms[f], cut - p) == 0) { hold = cut - p; break; }
    }
    cut -= hold;
  }
  keep = n - cut;
  out = mask_core(S, buf, cut, outlen, &oom);
  if (out == NULL && !oom) {
    out = (char *)malloc(cut ? cut : 1);
    if (out != NULL) { memcpy(out, buf, cut); *outlen = cut; }
  }
  if (out == NULL) { *outlen = 0; m->len = 0; return NULL; }  /* out of memory: drop, never leak */
  memmove(m->carry, buf + cut, keep);
  m->len = keep;
  return out;
}

char *relua_masker_feed(lua_State *L, relua_Masker *m, const char *data, size_t n, int flush,
                        size_t *outlen) {
  Secrets *S = secrets(L);
  *outlen = 0;
  if (m->len + n > m->cap) {
    size_t nc = m->cap ? m->cap : 4096;
    char *nb;
    while (nc < m->len + n) nc *= 2;
    nb = (char *)realloc(m->carry, nc);
    if (nb == NULL) return NULL;
    m->carry = nb;
    m->cap = nc;
  }
  if (n > 0) memcpy(m->carry + m->len, data, n);
  m->len += n;
  if (m->len == 0) return NULL;
  return masker_take(S, m, m->carry, m->len, flush, outlen);
}

void relua_masker_free(relua_Masker *m) {
  free(m->carry);
  memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- Lua */

/* secret.add(value): masks value (and its encodings) from now on. */
static int l_add(lua_State *L) {
  size_t len;
  const char *v = luaL_checklstring(L, 1, &len);
  Secrets *S = secrets(L);
  luaL_argcheck(L, len > 0, 1, "an empty string cannot be a secret");
  if (add_value(S, v, len) != 0) return luaL_error(L, "secret: not enough memory");
  return 0;
}

/* secret.mask(s) -> s with every secret replaced by *** */
static int l_mask(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  relua_mask(L, s, len, NULL);
  return 1;
}

/* secret.is_secret(s) -> true when s is exactly one of the values (or an encoding of one). */
static int l_is_secret(lua_State *L) {
  size_t len, i;
  const char *s = luaL_checklstring(L, 1, &len);
  Secrets *S = secrets(L);
  for (i = 0; i < S->n; i++)
    if (S->lens[i] == len && memcmp(S->forms[i], s, len) == 0) {
      lua_pushboolean(L, 1);
      return 1;
    }
  lua_pushboolean(L, 0);
  return 1;
}

/* secret.credential_name(name) -> does an environment variable's name say credential? */
static int l_credential_name(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushboolean(L, credential_name(s, len));
  return 1;
}

/* secret.count() -> how many values are masked */
static int l_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)secrets(L)->nv);
  return 1;
}

/* A masker for Lua (tests, and writers in pieces): m:feed(data [, flush]) -> text to write. */
#define MASKER_MT "relua.secret.Masker"

static int masker_gc(lua_State *L) {
  relua_masker_free((relua_Masker *)luaL_checkudata(L, 1, MASKER_MT));
  return 0;
}

static int l_masker(lua_State *L) {
  relua_Masker *m = (relua_Masker *)lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  luaL_setmetatable(L, MASKER_MT);
  return 1;
}

static int masker_feed(lua_State *L) {
  relua_Masker *m = (relua_Masker *)luaL_checkudata(L, 1, MASKER_MT);
  size_t n, outn;
  const char *data = luaL_optlstring(L, 2, "", &n);
  static const char *const modes[] = {"none", "idle", "end", NULL};
  int flush = luaL_checkoption(L, 3, "none", modes);
  char *out = relua_masker_feed(L, m, data, n, flush, &outn);
  lua_pushlstring(L, out ? out : "", out ? outn : 0);  /* [m, data, mode, text] */
  free(out);
  return 1;
}

static const luaL_Reg masker_methods[] = {
  {"feed", masker_feed},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"add", l_add},
  {"mask", l_mask},
  {"is_secret", l_is_secret},
  {"credential_name", l_credential_name},
  {"count", l_count},
  {"masker", l_masker},
  {NULL, NULL}
};

int luaopen_relua_core_secret(lua_State *L) {
  if (luaL_newmetatable(L, MASKER_MT)) {
    luaL_newlib(L, masker_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, masker_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
