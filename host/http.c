/*
** http.c: relua.core.http, a thin layer over libcurl's easy and multi interfaces.
** A Transfer is one attempt of one request (an easy handle with its headers, body source,
** form and body sink); a Multi runs many at once. C reports what happened (curl code, status,
** raw headers, sizes, timings); lib/relua/http.lua decides what it means: retries, error
** codes, truncation, progress and redaction.
**
** Callbacks never call into Lua and never raise: they record a flag and make libcurl abort
** (write returns 0, xferinfo returns 1); the Lua side reads the flags after the transfer.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "relua.h"

#define TRANSFER_MT "relua.http.Transfer"
#define MULTI_MT "relua.http.Multi"
#define MAX_HEADER_BYTES (256 * 1024)
#define POLL_SLICE_MS 100

struct Multi;

typedef struct Transfer {
  CURL *easy;
  struct Multi *owner;          /* the multi it is added to, or NULL */
  struct curl_slist *headers;
  curl_mime *mime;
  FILE *in;                     /* body_file */
  FILE *out;                    /* output */
  char *buf;                    /* the body in memory */
  size_t len, cap;
  char *hdr;                    /* raw header block of the latest response */
  size_t hlen, hcap;
  curl_off_t max_size;          /* 0: no cap */
  curl_off_t received;
  int too_large, interrupted, out_errno, in_errno, done, to_file;
  CURLcode code;
  char errbuf[CURL_ERROR_SIZE];
} Transfer;

typedef struct Multi {
  CURLM *multi;
  Transfer **items;             /* transfers currently added */
  size_t n, cap;
} Multi;

/* ---------------------------------------------------------------- helpers */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Grows *p to hold need bytes; returns 0 when memory ran out (never raises: callbacks). */
static int grow(char **p, size_t *cap, size_t need) {
  size_t c = *cap ? *cap : 4096;
  char *q;
  if (need <= *cap) return 1;
  while (c < need) {
    if (c > ((size_t)-1) / 2) return 0;
    c *= 2;
  }
  q = realloc(*p, c);
  if (q == NULL) return 0;
  *p = q;
  *cap = c;
  return 1;
}

/* ---------------------------------------------------------------- callbacks */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t n = size * nmemb;
  if (t->max_size > 0 && t->received + (curl_off_t)n > t->max_size) {
    t->too_large = 1;
    return 0;
  }
  if (t->out != NULL) {
    if (fwrite(data, 1, n, t->out) != n) {
      t->out_errno = errno ? errno : EIO;
      return 0;
    }
  } else {
    if (!grow(&t->buf, &t->cap, t->len + n)) {
      t->out_errno = ENOMEM;
      return 0;
    }
    memcpy(t->buf + t->len, data, n);
    t->len += n;
  }
  t->received += (curl_off_t)n;
  return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t n = size * nmemb;
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) t->hlen = 0;  /* a new response begins */
  if (t->hlen + n > MAX_HEADER_BYTES) return n;  /* keep the first 256 KiB: enough */
  if (!grow(&t->hdr, &t->hcap, t->hlen + n)) return 0;
  memcpy(t->hdr + t->hlen, data, n);
  t->hlen += n;
  return n;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t n = fread(dst, 1, size * nmemb, t->in);
  if (n == 0 && ferror(t->in)) {
    t->in_errno = errno ? errno : EIO;
    return CURL_READFUNC_ABORT;
  }
  return n;
}

static int on_seek(void *ud, curl_off_t offset, int origin) {
  Transfer *t = (Transfer *)ud;
  if (fseeko(t->in, (off_t)offset, origin) != 0) return CURL_SEEKFUNC_CANTSEEK;
  return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  Transfer *t = (Transfer *)ud;
  (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
  if (relua_interrupted()) {
    t->interrupted = 1;
    return 1;  /* abort: curl returns CURLE_ABORTED_BY_CALLBACK */
  }
  return 0;
}

/* ---------------------------------------------------------------- Transfer */

static void multi_detach(Multi *m, Transfer *t);

static void transfer_release(Transfer *t) {
  if (t->owner != NULL) multi_detach(t->owner, t);
  if (t->easy != NULL) curl_easy_cleanup(t->easy);  /* before the mime and slists it uses */
  t->easy = NULL;
  if (t->mime != NULL) curl_mime_free(t->mime);
  t->mime = NULL;
  if (t->headers != NULL) curl_slist_free_all(t->headers);
  t->headers = NULL;
  if (t->in != NULL) fclose(t->in);
  t->in = NULL;
  if (t->out != NULL) fclose(t->out);
  t->out = NULL;
  free(t->buf);
  t->buf = NULL;
  t->len = t->cap = 0;
  free(t->hdr);
  t->hdr = NULL;
  t->hlen = t->hcap = 0;
}

static Transfer *check_transfer(lua_State *L, int idx) {
  Transfer *t = (Transfer *)luaL_checkudata(L, idx, TRANSFER_MT);
  if (t->easy == NULL) luaL_error(L, "http: the transfer is closed");
  return t;
}

/* One close for close, __gc and __close. */
static int transfer_close(lua_State *L) {
  Transfer *t = (Transfer *)luaL_checkudata(L, 1, TRANSFER_MT);
  transfer_release(t);
  return 0;
}

static int transfer_tostring(lua_State *L) {
  Transfer *t = (Transfer *)luaL_checkudata(L, 1, TRANSFER_MT);
  lua_pushfstring(L, "http.Transfer (%s)", t->easy ? (t->done ? "done" : "open") : "closed");
  return 1;
}

#define SETOPT(opt, val)                                                          \
  do {                                                                            \
    CURLcode rc_ = curl_easy_setopt(t->easy, opt, val);                           \
    if (rc_ != CURLE_OK)                                                          \
      return luaL_error(L, "http: curl_easy_setopt(%s): %s", #opt,                \
                        curl_easy_strerror(rc_));                                 \
  } while (0)

static const char *opt_string(lua_State *L, int spec, const char *key) {
  const char *s;
  lua_getfield(L, spec, key);
  s = lua_tostring(L, -1);  /* NULL when absent; the spec table keeps the string alive */
  lua_pop(L, 1);
  return s;
}

static lua_Integer opt_integer(lua_State *L, int spec, const char *key, lua_Integer dflt) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, spec, key);
  v = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  return isnum ? v : dflt;
}

static int opt_bool(lua_State *L, int spec, const char *key) {
  int v;
  lua_getfield(L, spec, key);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Opens a file to read and returns it with its size; on failure pushes nil, msg, "file". */
static FILE *open_input(lua_State *L, const char *what, const char *path, curl_off_t *size) {
  struct stat st;
  int err = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) err = errno;
  else if (fstat(fileno(f), &st) != 0) err = errno;
  else if (S_ISDIR(st.st_mode)) err = EISDIR;
  else if (!S_ISREG(st.st_mode)) err = -1;
  if (err != 0) {
    if (f != NULL) fclose(f);
    relua_fail(L, "file", "cannot read %s %s: %s", what, path,
               err > 0 ? strerror(err) : "not a regular file");
    return NULL;
  }
  *size = (curl_off_t)st.st_size;
  return f;
}

/* Builds the multipart body from spec.form; returns 0 or pushes nil, msg, code (3). */
static int build_form(lua_State *L, Transfer *t, int spec) {
  lua_Integer i, n;
  lua_getfield(L, spec, "form");  /* [form] */
  n = (lua_Integer)luaL_len(L, -1);
  t->mime = curl_mime_init(t->easy);
  if (t->mime == NULL) return luaL_error(L, "http: out of memory");
  for (i = 1; i <= n; i++) {
    curl_mimepart *part;
    const char *name, *value, *file, *filename, *type;
    size_t vlen = 0;
    int fi = lua_gettop(L);
    lua_rawgeti(L, fi, i);  /* [form, part] */
    part = curl_mime_addpart(t->mime);
    if (part == NULL) return luaL_error(L, "http: out of memory");
    name = opt_string(L, -1, "name");
    file = opt_string(L, -1, "file");
    filename = opt_string(L, -1, "filename");
    type = opt_string(L, -1, "type");
    lua_getfield(L, -1, "value");  /* [form, part, value] */
    value = lua_tolstring(L, -1, &vlen);
    lua_pop(L, 1);
    curl_mime_name(part, name);
    if (file != NULL) {
      curl_off_t size;
      FILE *probe = open_input(L, "form file", file, &size);
      if (probe == NULL) return 3;  /* [form, part, nil, msg, code] */
      fclose(probe);
      if (curl_mime_filedata(part, file) != CURLE_OK)
        return relua_fail(L, "file", "cannot read form file %s", file);
    } else if (value != NULL) {
      curl_mime_data(part, value, vlen);
    }
    if (filename != NULL) curl_mime_filename(part, filename);
    if (type != NULL) curl_mime_type(part, type);
    lua_getfield(L, -1, "headers");  /* [form, part, headers?] */
    if (lua_istable(L, -1)) {
      lua_Integer j, hn = (lua_Integer)luaL_len(L, -1);
      struct curl_slist *list = NULL, *tmp;
      for (j = 1; j <= hn; j++) {
        lua_rawgeti(L, -1, j);
        tmp = curl_slist_append(list, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (tmp == NULL) {
          curl_slist_free_all(list);
          return luaL_error(L, "http: out of memory");
        }
        list = tmp;
      }
      curl_mime_headers(part, list, 1);  /* the part owns the list now */
    }
    lua_settop(L, fi);  /* [form] */
  }
  lua_pop(L, 1);
  SETOPT(CURLOPT_MIMEPOST, t->mime);
  return 0;
}

/*
** core.transfer(spec) -> Transfer | nil, msg, code
** spec (validated by the Lua layer): method, url, headers (array of "Name: value"), body |
** body_file | form, nobody, user, password, timeout_ms, connect_timeout_ms, stall_seconds,
** output, max_size, cainfo, insecure, follow, max_redirects, user_agent, fresh.
*/
static int http_transfer(lua_State *L) {
  Transfer *t;
  const char *method, *url, *s;
  size_t blen = 0;
  int spec = 1, has_body = 0;
  lua_Integer v;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Box first: a closed Transfer that __gc can always clean, then acquire. */
  t = (Transfer *)lua_newuserdatauv(L, sizeof(Transfer), 1);  /* [spec, t] */
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, TRANSFER_MT);
  relua_need_curl();
  t->easy = curl_easy_init();
  if (t->easy == NULL) return luaL_error(L, "http: curl_easy_init failed");

  method = opt_string(L, spec, "method");
  url = opt_string(L, spec, "url");
  luaL_argcheck(L, method != NULL && url != NULL, 1, "method and url are required");

  SETOPT(CURLOPT_PRIVATE, (void *)t);
  SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(CURLOPT_WRITEDATA, (void *)t);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, (void *)t);
  SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
  SETOPT(CURLOPT_XFERINFODATA, (void *)t);
  SETOPT(CURLOPT_NOPROGRESS, 0L);

  if ((s = opt_string(L, spec, "user_agent")) != NULL) SETOPT(CURLOPT_USERAGENT, s);
  if (opt_bool(L, spec, "follow")) {
    SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(CURLOPT_MAXREDIRS, (long)opt_integer(L, spec, "max_redirects", 10));
  }
  if ((v = opt_integer(L, spec, "timeout_ms", 0)) > 0) SETOPT(CURLOPT_TIMEOUT_MS, (long)v);
  if ((v = opt_integer(L, spec, "connect_timeout_ms", 0)) > 0)
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)v);
  if ((v = opt_integer(L, spec, "stall_seconds", 0)) > 0) {
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SETOPT(CURLOPT_LOW_SPEED_TIME, (long)v);
  }
  if ((v = opt_integer(L, spec, "max_size", 0)) > 0) {
    t->max_size = (curl_off_t)v;
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)v);
  }
  if ((s = opt_string(L, spec, "cainfo")) != NULL) SETOPT(CURLOPT_CAINFO, s);
  if (opt_bool(L, spec, "insecure")) {
    SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (opt_bool(L, spec, "fresh")) {
    SETOPT(CURLOPT_FRESH_CONNECT, 1L);
    SETOPT(CURLOPT_FORBID_REUSE, 1L);
  }
  if ((s = opt_string(L, spec, "user")) != NULL) {
    SETOPT(CURLOPT_USERNAME, s);
    SETOPT(CURLOPT_PASSWORD, opt_string(L, spec, "password"));
    SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  }

  lua_getfield(L, spec, "headers");  /* [spec, t, headers] */
  if (lua_istable(L, -1)) {
    lua_Integer i, n = (lua_Integer)luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
      struct curl_slist *tmp;
      lua_rawgeti(L, -1, i);
      tmp = curl_slist_append(t->headers, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (tmp == NULL) return luaL_error(L, "http: out of memory");
      t->headers = tmp;
    }
    if (t->headers != NULL) SETOPT(CURLOPT_HTTPHEADER, t->headers);
  }
  lua_pop(L, 1);  /* [spec, t] */

  /* The body: a string (kept alive as the user value, no copy), a file, or a form. */
  lua_getfield(L, spec, "body");  /* [spec, t, body] */
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *b = lua_tolstring(L, -1, &blen);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 2, 1);
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    SETOPT(CURLOPT_POSTFIELDS, b);
    has_body = 1;
  }
  lua_pop(L, 1);  /* [spec, t] */
  if ((s = opt_string(L, spec, "body_file")) != NULL) {
    curl_off_t size;
    t->in = open_input(L, "body_file", s, &size);
    if (t->in == NULL) return 3;
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_READFUNCTION, on_read);
    SETOPT(CURLOPT_READDATA, (void *)t);
    SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
    SETOPT(CURLOPT_SEEKDATA, (void *)t);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, size);
    has_body = 1;
  }
  lua_getfield(L, spec, "form");
  if (lua_istable(L, -1)) {
    lua_pop(L, 1);
    if (build_form(L, t, spec) != 0) return 3;
    has_body = 1;
  } else
    lua_pop(L, 1);

  if (opt_bool(L, spec, "nobody")) SETOPT(CURLOPT_NOBODY, 1L);
  else if (has_body) {
    if (strcmp(method, "POST") != 0) SETOPT(CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") != 0)
    SETOPT(CURLOPT_CUSTOMREQUEST, method);

  if ((s = opt_string(L, spec, "output")) != NULL) {
    t->out = fopen(s, "wb");
    if (t->out == NULL) return relua_fail(L, "file", "cannot write output %s: %s", s, strerror(errno));
    t->to_file = 1;
  }
  lua_settop(L, 2);
  return 1;
}

/* t:progress() -> dlnow, dltotal, ulnow, ultotal (bytes; totals 0 when unknown) */
static int transfer_progress(lua_State *L) {
  Transfer *t = check_transfer(L, 1);
  curl_off_t dlnow = 0, dltotal = 0, ulnow = 0, ultotal = 0;
  curl_easy_getinfo(t->easy, CURLINFO_SIZE_DOWNLOAD_T, &dlnow);
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &dltotal);
  curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &ulnow);
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_UPLOAD_T, &ultotal);
  lua_pushinteger(L, (lua_Integer)dlnow);
  lua_pushinteger(L, (lua_Integer)(dltotal > 0 ? dltotal : 0));
  lua_pushinteger(L, (lua_Integer)ulnow);
  lua_pushinteger(L, (lua_Integer)(ultotal > 0 ? ultotal : 0));
  return 4;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int is_blank(char c) {  /* Lua's %s */
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Pushes the text from p to e without the blanks around it. */
static void push_trimmed(lua_State *L, const char *p, const char *e) {
  while (p < e && is_blank(*p)) p++;
  while (e > p && is_blank(e[-1])) e--;
  lua_pushlstring(L, p, (size_t)(e - p));
}

/*
** Pushes the fields of the raw head as relua.http shows them: a map {name = value} and a
** list {{name, value}, ...}. Lines are split at CR and LF; status lines ("HTTP/...") are
** skipped; names are lower-cased; the blanks around a value are trimmed; a repeated field
** is joined with ", " (Set-Cookie with a newline); an obsolete folded line (starting with
** a blank) is added to the field before it after one space.
*/
static void push_fields(lua_State *L, const char *raw, size_t len) {
  const char *p = raw, *end = raw + len;
  int map, list;
  lua_Integer n = 0;
  lua_createtable(L, 0, 8);
  map = lua_gettop(L);
  lua_createtable(L, 8, 0);
  list = lua_gettop(L);
  while (p < end) {
    const char *e = p, *name_end, *v;
    while (e < end && *e != '\r' && *e != '\n') e++;
    if (e == p) { p++; continue; }
    if (e - p >= 5 && memcmp(p, "HTTP/", 5) == 0) { p = e; continue; }
    name_end = p;
    while (name_end < e && *name_end != ':' && !is_blank(*name_end)) name_end++;
    v = name_end;
    while (v < e && is_blank(*v)) v++;
    if (name_end > p && v < e && *v == ':') {
      luaL_Buffer b;
      const char *c;
      luaL_buffinit(L, &b);
      for (c = p; c < name_end; c++) luaL_addchar(&b, (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c));
      luaL_pushresult(&b);                          /* [.., name] */
      push_trimmed(L, v + 1, e);                    /* [.., name, value] */
      lua_createtable(L, 2, 0);                     /* [.., name, value, pair] */
      lua_pushvalue(L, -3);
      lua_rawseti(L, -2, 1);
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, list, ++n);                    /* [.., name, value] */
      lua_pushvalue(L, -2);
      if (lua_rawget(L, map) == LUA_TSTRING) {      /* [.., name, value, old] */
        lua_pushstring(L, strcmp(lua_tostring(L, -3), "set-cookie") == 0 ? "\n" : ", ");
        lua_rotate(L, -3, -1);                      /* [.., name, old, sep, value] */
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
      }
      lua_rawset(L, map);                           /* [..] */
    } else if ((*p == ' ' || *p == '\t') && n > 0) {
      push_trimmed(L, p, e);                        /* [.., folded] */
      lua_rawgeti(L, list, n);                      /* [.., folded, pair] */
      lua_rawgeti(L, -1, 1);                        /* [.., folded, pair, name] */
      lua_rawgeti(L, -2, 2);
      lua_pushstring(L, " ");
      lua_pushvalue(L, -5);
      lua_concat(L, 3);                             /* [.., folded, pair, name, value .. " " .. folded] */
      lua_rawseti(L, -3, 2);
      lua_pushvalue(L, -1);
      lua_rawget(L, map);                           /* [.., folded, pair, name, joined] */
      lua_pushstring(L, " ");
      lua_pushvalue(L, -5);
      lua_concat(L, 3);
      lua_rawset(L, map);                           /* [.., folded, pair] */
      lua_pop(L, 2);
    }
    p = e;
  }
}

/*
** t:result() -> {curl=, error=, status=, headers=raw, header_map=, header_list= (the
**   fields of the head: push_fields), body=?, size=, content_length=, url=, redirects=,
**   started=, os_errno=, too_large=, interrupted=, output_error=, time=}
** Only for a finished transfer. Closing the output file here flushes it.
*/
static int transfer_result(lua_State *L) {
  Transfer *t = check_transfer(L, 1);
  long status = 0, redirects = 0, oserr = 0;
  curl_off_t cl = -1, pretransfer = 0, total = 0, uploaded = 0;
  long reqsize = 0;
  char *eff = NULL;
  luaL_argcheck(L, t->done, 1, "the transfer has not finished");
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &oserr);
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total);
  curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
  curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &reqsize);
  curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &eff);
  if (t->out != NULL) {
    if (fclose(t->out) != 0 && t->out_errno == 0) t->out_errno = errno ? errno : EIO;
    t->out = NULL;
  }
  lua_createtable(L, 0, 16);
  set_int(L, "curl", (lua_Integer)t->code);
  lua_pushstring(L, t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->code));
  lua_setfield(L, -2, "error");
  set_int(L, "status", (lua_Integer)status);
  lua_pushlstring(L, t->hdr ? t->hdr : "", t->hlen);
  lua_setfield(L, -2, "headers");
  push_fields(L, t->hdr ? t->hdr : "", t->hlen);  /* [r, map, list] */
  lua_setfield(L, -3, "header_list");
  lua_setfield(L, -2, "header_map");
  if (!t->to_file) {
    lua_pushlstring(L, t->buf ? t->buf : "", t->len);
    lua_setfield(L, -2, "body");
  }
  set_int(L, "size", (lua_Integer)t->received);
  set_int(L, "content_length", (lua_Integer)cl);
  set_int(L, "redirects", (lua_Integer)redirects);
  set_int(L, "os_errno", (lua_Integer)oserr);
  set_int(L, "uploaded", (lua_Integer)uploaded);
  lua_pushboolean(L, pretransfer > 0 || uploaded > 0 || reqsize > 0);
  lua_setfield(L, -2, "started");
  lua_pushboolean(L, t->too_large);
  lua_setfield(L, -2, "too_large");
  lua_pushboolean(L, t->interrupted);
  lua_setfield(L, -2, "interrupted");
  if (t->out_errno != 0) {
    lua_pushstring(L, strerror(t->out_errno));
    lua_setfield(L, -2, "output_error");
  }
  if (t->in_errno != 0) {
    lua_pushstring(L, strerror(t->in_errno));
    lua_setfield(L, -2, "input_error");
  }
  lua_pushnumber(L, (lua_Number)total / 1e6);
  lua_setfield(L, -2, "time");
  if (eff != NULL) {
    lua_pushstring(L, eff);
    lua_setfield(L, -2, "url");
  }
  return 1;
}

/* ---------------------------------------------------------------- Multi */

static void multi_detach(Multi *m, Transfer *t) {
  size_t i;
  if (m->multi != NULL && t->easy != NULL) curl_multi_remove_handle(m->multi, t->easy);
  for (i = 0; i < m->n; i++) {
    if (m->items[i] == t) {
      m->items[i] = m->items[--m->n];
      break;
    }
  }
  t->owner = NULL;
}

static void multi_release(Multi *m) {
  while (m->n > 0) multi_detach(m, m->items[m->n - 1]);
  if (m->multi != NULL) curl_multi_cleanup(m->multi);
  m->multi = NULL;
  free(m->items);
  m->items = NULL;
  m->cap = 0;
}

static Multi *check_multi(lua_State *L, int idx) {
  Multi *m = (Multi *)luaL_checkudata(L, idx, MULTI_MT);
  if (m->multi == NULL) luaL_error(L, "http: the multi handle is closed");
  return m;
}

static int multi_close(lua_State *L) {
  Multi *m = (Multi *)luaL_checkudata(L, 1, MULTI_MT);
  multi_release(m);
  return 0;
}

/* core.multi() -> Multi. Its user value maps Transfer pointers to the added Transfers. */
static int http_multi(lua_State *L) {
  Multi *m = (Multi *)lua_newuserdatauv(L, sizeof(Multi), 1);  /* [m] */
  memset(m, 0, sizeof *m);
  luaL_setmetatable(L, MULTI_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  relua_need_curl();
  m->multi = curl_multi_init();
  if (m->multi == NULL) return luaL_error(L, "http: curl_multi_init failed");
  return 1;
}

/* m:limit(n): at most n connections to one host at once (0: no limit); the transfers
   beyond wait inside libcurl for a free connection, and reuse it. */
static int multi_limit(lua_State *L) {
  Multi *m = check_multi(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "a number of connections (0: no limit)");
  curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n);
  return 0;
}

/* m:add(t): starts the transfer. */
static int multi_add(lua_State *L) {
  Multi *m = check_multi(L, 1);
  Transfer *t = check_transfer(L, 2);
  CURLMcode rc;
  luaL_argcheck(L, t->owner == NULL && !t->done, 2, "the transfer was already started");
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    Transfer **items = realloc(m->items, cap * sizeof *items);
    if (items == NULL) return luaL_error(L, "http: out of memory");
    m->items = items;
    m->cap = cap;
  }
  lua_getiuservalue(L, 1, 1);  /* [m, t, map] */
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);           /* map[t*] = t: the multi keeps it alive while running */
  rc = curl_multi_add_handle(m->multi, t->easy);
  if (rc != CURLM_OK) {
    lua_pushlightuserdata(L, t);
    lua_pushnil(L);
    lua_rawset(L, -3);
    return luaL_error(L, "http: curl_multi_add_handle: %s", curl_multi_strerror(rc));
  }
  m->items[m->n++] = t;
  t->owner = m;
  return 0;
}

/*
** m:run(timeout) -> array of the Transfers that finished (maybe empty).
** Drives the transfers for at most timeout seconds, returning as soon as one finishes.
** With nothing added it simply waits (an interruptible sleep). Ctrl-C raises "interrupted";
** the caller's cleanup closes the transfers.
*/
static int multi_run(lua_State *L) {
  Multi *m = check_multi(L, 1);
  double timeout = luaL_optnumber(L, 2, 0), deadline = now_seconds() + timeout;
  int running = 0, found = 0;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);  /* [m, map] */
  lua_newtable(L);             /* [m, map, done] */
  for (;;) {
    CURLMsg *msg;
    int left;
    double rest;
    CURLMcode rc;
    if (relua_interrupted()) return relua_raise_interrupt(L);
    rc = curl_multi_perform(m->multi, &running);
    if (rc != CURLM_OK) return luaL_error(L, "http: curl_multi_perform: %s", curl_multi_strerror(rc));
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
      Transfer *t = NULL;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
      if (t == NULL) continue;
      t->done = 1;
      t->code = msg->data.result;
      multi_detach(m, t);          /* msg is invalid from here on */
      lua_pushlightuserdata(L, t);
      lua_rawget(L, 2);            /* [m, map, done, T] */
      lua_rawseti(L, 3, ++found);  /* [m, map, done] */
      lua_pushlightuserdata(L, t);
      lua_pushnil(L);
      lua_rawset(L, 2);
    }
    if (found > 0) break;
    if (relua_interrupted()) return relua_raise_interrupt(L);
    rest = deadline - now_seconds();
    if (rest <= 0) break;
    {
      int ms = (int)(rest * 1000) + 1;
      if (ms > POLL_SLICE_MS) ms = POLL_SLICE_MS;
      rc = curl_multi_poll(m->multi, NULL, 0, ms, NULL);
      if (rc != CURLM_OK) return luaL_error(L, "http: curl_multi_poll: %s", curl_multi_strerror(rc));
    }
  }
  return 1;
}

static int multi_count(lua_State *L) {
  Multi *m = check_multi(L, 1);
  lua_pushinteger(L, (lua_Integer)m->n);
  return 1;
}

/* ---------------------------------------------------------------- functions */

/* core.clock() -> monotonic seconds */
static int http_clock(lua_State *L) {
  lua_pushnumber(L, now_seconds());
  return 1;
}

/* core.isatty(fd) -> boolean */
static int http_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)) == 1);
  return 1;
}

static const luaL_Reg transfer_methods[] = {
  {"progress", transfer_progress},
  {"result", transfer_result},
  {"close", transfer_close},
  {NULL, NULL}
};

static const luaL_Reg transfer_meta[] = {
  {"__gc", transfer_close},
  {"__close", transfer_close},
  {"__tostring", transfer_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg multi_methods[] = {
  {"add", multi_add},
  {"limit", multi_limit},
  {"run", multi_run},
  {"count", multi_count},
  {"close", multi_close},
  {NULL, NULL}
};

static const luaL_Reg multi_meta[] = {
  {"__gc", multi_close},
  {"__close", multi_close},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg functions[] = {
  {"transfer", http_transfer},
  {"multi", http_multi},
  {"clock", http_clock},
  {"isatty", http_isatty},
  {NULL, NULL}
};

static void new_type(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);  /* [mt] */
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);             /* [mt, methods] */
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int luaopen_relua_core_http(lua_State *L) {
  relua_need_curl();
  new_type(L, TRANSFER_MT, transfer_meta, transfer_methods);
  new_type(L, MULTI_MT, multi_meta, multi_methods);
  luaL_newlib(L, functions);
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_setfield(L, -2, "libcurl");
  return 1;
}
