/*
** yaml.c: YAML documents into Lua values, over libyaml's event API.
** Mappings become tables, sequences arrays (with relua.json's array metatable, so they
** re-encode as arrays), plain scalars are typed per the YAML 1.2 core schema, quoted and
** block scalars stay strings, anchors and aliases share one Lua value. Policy (reading
** files, encoding) is Lua, in lib/relua/yaml.lua.
**
** Lifetimes: the libyaml parser and its current event live in a userdata (box first,
** acquire second). Building tables may raise (memory, a malformed document); libyaml is
** never on the C stack when that happens (we only call yaml_parser_parse, which returns),
** and the box frees the parser and event on every path: explicitly after the protected
** call, or by __gc.
*/
#include <math.h>
#include <string.h>

#include <yaml.h>

#include "relua.h"

#define PARSER_MT "relua.yaml.Parser"
#define MAX_DEPTH 1000
/*
** The node budget: what aliases may add to one document, counting every node of an
** aliased subtree each time it is aliased. A 2 KB "billion laughs" text names 10^9 leaves
** through nested aliases: shared in Lua, it decodes instantly, but anything that walks it
** (an encoder, r.state) would not finish. Plain nodes are not counted: they cost their
** own bytes of input.
*/
#define ALIAS_BUDGET 1000000

typedef struct Parser {
  yaml_parser_t parser;
  yaml_event_t event;
  int parser_live;  /* parser initialised, not yet deleted */
  int event_live;   /* event holds memory */
} Parser;

static int parser_close(lua_State *L) {
  Parser *p = (Parser *)luaL_checkudata(L, 1, PARSER_MT);
  if (p->event_live) {
    yaml_event_delete(&p->event);
    p->event_live = 0;
  }
  if (p->parser_live) {
    yaml_parser_delete(&p->parser);
    p->parser_live = 0;
  }
  return 0;
}

/* What a decode needs while it walks the events. Stack slots are absolute indices. */
typedef struct Ctx {
  lua_State *L;
  Parser *p;
  const char *name;     /* what the text is, for messages */
  const char *text;
  size_t len;
  int anchors;          /* table: anchor name -> value, per document */
  int sizes;            /* table: anchor name -> nodes in its subtree, once complete */
  lua_Integer aliased;  /* nodes added by aliases so far in this document */
  int array_mt;         /* metatable that marks arrays, or 0 */
  int depth;
} Ctx;

/* The null of YAML (and of relua.json, cjson.null): a NULL light userdata. */
static void push_null(lua_State *L) {
  lua_pushlightuserdata(L, NULL);
}

static int is_null(lua_State *L, int idx) {
  return lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL;
}

/* ---------------------------------------------------------------- errors */

/* Raises "yaml.decode: NAME:LINE:COLUMN: what" (1-based line and column). */
static int fail_at(Ctx *c, yaml_mark_t mark, const char *what) {
  return luaL_error(c->L, "yaml.decode: %s:%d:%d: %s", c->name, (int)mark.line + 1,
                    (int)mark.column + 1, what);
}

/* The parser's own error, with its position and what it was in the middle of. */
static int fail_parser(Ctx *c) {
  yaml_parser_t *ps = &c->p->parser;
  yaml_mark_t mark = ps->problem_mark;
  const char *problem = ps->problem ? ps->problem : "malformed document";
  if (ps->error == YAML_MEMORY_ERROR) return luaL_error(c->L, "yaml.decode: not enough memory");
  if (ps->error == YAML_READER_ERROR) {
    /* Encoding problems come with a byte offset only: count lines up to it. */
    size_t i, off = ps->problem_offset < c->len ? ps->problem_offset : c->len;
    mark.line = 0;
    mark.column = 0;
    for (i = 0; i < off; i++) {
      if (c->text[i] == '\n') { mark.line++; mark.column = 0; }
      else mark.column++;
    }
  }
  if (ps->context != NULL) {
    lua_pushfstring(c->L, "%s, %s at line %d, column %d", problem, ps->context,
                    (int)ps->context_mark.line + 1, (int)ps->context_mark.column + 1);
    return fail_at(c, mark, lua_tostring(c->L, -1));
  }
  return fail_at(c, mark, problem);
}

/* Frees the current event and reads the next one into the box. */
static yaml_event_t *next_event(Ctx *c) {
  Parser *p = c->p;
  if (p->event_live) {
    yaml_event_delete(&p->event);
    p->event_live = 0;
  }
  if (!yaml_parser_parse(&p->parser, &p->event)) fail_parser(c);
  p->event_live = 1;
  return &p->event;
}

/* ---------------------------------------------------------------- scalars */

static int all_in(const char *s, const char *set) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (strchr(set, *s) == NULL) return 0;
  return 1;
}

static int is_one_of(const char *s, const char *const *list) {
  for (; *list; list++)
    if (strcmp(s, *list) == 0) return 1;
  return 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float_syntax(const char *s) {
  int digits = 0;
  if (*s == '-' || *s == '+') s++;
  while (*s >= '0' && *s <= '9') { s++; digits++; }
  if (*s == '.') {
    s++;
    while (*s >= '0' && *s <= '9') { s++; digits++; }
  }
  if (digits == 0) return 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+') s++;
    if (!(*s >= '0' && *s <= '9')) return 0;
    while (*s >= '0' && *s <= '9') s++;
  }
  return *s == '\0';
}

/* 0o17 or 0x1f: an integer, or a float when it does not fit. */
static void push_radix(lua_State *L, const char *digits, int base) {
  lua_Unsigned u = 0;
  double d = 0;
  int overflow = 0;
  for (; *digits; digits++) {
    int v = *digits <= '9' ? *digits - '0' : (*digits | 0x20) - 'a' + 10;
    if (u > (LUA_MAXINTEGER - (lua_Unsigned)v) / (lua_Unsigned)base) overflow = 1;
    u = u * (lua_Unsigned)base + (lua_Unsigned)v;
    d = d * base + v;
  }
  if (overflow) lua_pushnumber(L, (lua_Number)d);
  else lua_pushinteger(L, (lua_Integer)u);
}

/*
** Pushes the value of a plain scalar per the YAML 1.2 core schema: null, bool, int (decimal,
** 0o octal, 0x hex), float (with .inf and .nan), else the string itself.
*/
static void push_plain(lua_State *L, const char *s, size_t n) {
  static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", NULL};
  static const char *const falses[] = {"false", "False", "FALSE", NULL};
  static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
  static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
  const char *u = (*s == '-' || *s == '+') ? s + 1 : s;
  if (n == 0 || is_one_of(s, nulls)) { push_null(L); return; }
  if (strlen(s) != n) { lua_pushlstring(L, s, n); return; }  /* an embedded NUL: text */
  if (is_one_of(s, trues)) { lua_pushboolean(L, 1); return; }
  if (is_one_of(s, falses)) { lua_pushboolean(L, 0); return; }
  if (all_in(u, "0123456789")) {
    /* Decimal: Lua reads it as an integer, or as a float when it does not fit. */
    if (lua_stringtonumber(L, s) != 0) return;
  } else if (s[0] == '0' && s[1] == 'o' && all_in(s + 2, "01234567")) {
    push_radix(L, s + 2, 8);
    return;
  } else if (s[0] == '0' && s[1] == 'x' && all_in(s + 2, "0123456789abcdefABCDEF")) {
    push_radix(L, s + 2, 16);
    return;
  } else if (is_float_syntax(s)) {
    if (lua_stringtonumber(L, s) != 0) {
      lua_Number f = lua_tonumber(L, -1);
      lua_pop(L, 1);
      lua_pushnumber(L, f);  /* "1e3" is a float, not an integer */
      return;
    }
  } else if (is_one_of(u, infs)) {
    lua_pushnumber(L, *s == '-' ? -HUGE_VAL : HUGE_VAL);
    return;
  } else if (is_one_of(s, nans)) {
    lua_pushnumber(L, (lua_Number)NAN);
    return;
  }
  lua_pushlstring(L, s, n);
}

#define TAG(name) "tag:yaml.org,2002:" name

/* Pushes the value of the scalar event ev, honouring the core schema's explicit tags. */
static void push_scalar(Ctx *c, yaml_event_t *ev) {
  lua_State *L = c->L;
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag != NULL) {
    if (strcmp(tag, TAG("str")) == 0 || strcmp(tag, "!") == 0) {
      lua_pushlstring(L, s, n);
      return;
    }
    if (strcmp(tag, TAG("int")) == 0 || strcmp(tag, TAG("float")) == 0 ||
        strcmp(tag, TAG("bool")) == 0 || strcmp(tag, TAG("null")) == 0) {
      int t, ok;
      const char *want = tag + sizeof TAG("") - 1;
      push_plain(L, s, n);
      t = lua_type(L, -1);
      if (want[0] == 'i') ok = lua_isinteger(L, -1);
      else if (want[0] == 'f') ok = t == LUA_TNUMBER;
      else if (want[0] == 'b') ok = t == LUA_TBOOLEAN;
      else ok = is_null(L, -1);
      if (!ok) {
        lua_pushfstring(L, "!!%s: not a valid %s: '%s'", want, want, s);
        fail_at(c, ev->start_mark, lua_tostring(L, -1));
      }
      if (want[0] == 'f') {
        lua_Number f = lua_tonumber(L, -1);
        lua_pop(L, 1);
        lua_pushnumber(L, f);
      }
      return;
    }
    /* Other tags (application-specific) are not interpreted: the value is read as usual. */
  }
  if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) push_plain(L, s, n);
  else lua_pushlstring(L, s, n);
}

/* ---------------------------------------------------------------- nodes */

/* Records an anchor's value; pushes its name (kept until its size is known) or nothing. */
static int set_anchor(Ctx *c, yaml_char_t *anchor, int value) {
  if (anchor == NULL) return 0;
  lua_pushstring(c->L, (const char *)anchor);     /* [name] */
  lua_pushvalue(c->L, value);
  lua_setfield(c->L, c->anchors, (const char *)anchor);
  lua_pushnil(c->L);                               /* not complete yet: an alias now is a cycle */
  lua_setfield(c->L, c->sizes, (const char *)anchor);
  return 1;
}

/* The anchor's node is complete: records its size and pops its name. */
static void anchor_done(Ctx *c, int named, lua_Integer size) {
  if (!named) return;
  lua_pushinteger(c->L, size);
  lua_setfield(c->L, c->sizes, lua_tostring(c->L, -2));
  lua_pop(c->L, 1);
}

/* Pushes the node that starts with the current event; returns how many nodes it is,
   aliases counted as the nodes they stand for. */
static lua_Integer parse_node(Ctx *c) {
  lua_State *L = c->L;
  yaml_event_t *ev = &c->p->event;
  luaL_checkstack(L, 8, "yaml.decode: nested too deeply");
  switch (ev->type) {
    case YAML_SCALAR_EVENT: {
      int named;
      push_scalar(c, ev);
      named = set_anchor(c, ev->data.scalar.anchor, lua_gettop(L));
      anchor_done(c, named, 1);
      return 1;
    }

    case YAML_ALIAS_EVENT: {
      const char *name = (const char *)ev->data.alias.anchor;
      lua_Integer size;
      if (lua_getfield(L, c->anchors, name) == LUA_TNIL) {
        lua_pushfstring(L, "unknown alias *%s (no anchor &%s before it)", name, name);
        fail_at(c, ev->start_mark, lua_tostring(L, -1));
      }
      if (lua_getfield(L, c->sizes, name) != LUA_TNUMBER) {
        lua_pushfstring(L, "alias *%s is inside the node &%s it names (a cycle)", name, name);
        fail_at(c, ev->start_mark, lua_tostring(L, -1));
      }
      size = lua_tointeger(L, -1);
      lua_pop(L, 1);
      c->aliased += size;
      if (c->aliased > ALIAS_BUDGET) {
        lua_pushfstring(L, "aliases expand to more than %d nodes at *%s (an alias bomb?); "
                        "write the document without so many nested aliases", ALIAS_BUDGET, name);
        fail_at(c, ev->start_mark, lua_tostring(L, -1));
      }
      return size;
    }

    case YAML_SEQUENCE_START_EVENT: {
      int t, named;
      lua_Integer i = 0, size = 1;
      if (++c->depth > MAX_DEPTH) fail_at(c, ev->start_mark, "nested too deeply");
      lua_newtable(L);                                /* [seq] */
      t = lua_gettop(L);
      if (c->array_mt) {
        lua_pushvalue(L, c->array_mt);
        lua_setmetatable(L, t);
      }
      named = set_anchor(c, ev->data.sequence_start.anchor, t);   /* [seq, name?] */
      while (next_event(c)->type != YAML_SEQUENCE_END_EVENT) {
        size += parse_node(c);                        /* [seq, name?, item] */
        lua_rawseti(L, t, ++i);                       /* a null stays in place as json.null */
      }
      anchor_done(c, named, size);                    /* [seq] */
      c->depth--;
      return size;
    }

    case YAML_MAPPING_START_EVENT: {
      int t, named;
      lua_Integer size = 1;
      if (++c->depth > MAX_DEPTH) fail_at(c, ev->start_mark, "nested too deeply");
      lua_newtable(L);                                /* [map] */
      t = lua_gettop(L);
      named = set_anchor(c, ev->data.mapping_start.anchor, t);    /* [map, name?] */
      while (next_event(c)->type != YAML_MAPPING_END_EVENT) {
        yaml_mark_t key_mark = ev->start_mark;
        size += parse_node(c);                        /* [map, name?, key] */
        if (is_null(L, -1)) fail_at(c, key_mark, "a null mapping key cannot be a Lua table key");
        if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
          fail_at(c, key_mark, "a NaN mapping key cannot be a Lua table key");
        lua_pushvalue(L, -1);
        if (lua_rawget(L, t) != LUA_TNIL) {           /* [map, name?, key, old] */
          lua_pushfstring(L, "duplicate key '%s'", luaL_tolstring(L, -2, NULL));
          fail_at(c, key_mark, lua_tostring(L, -1));
        }
        lua_pop(L, 1);                                /* [map, name?, key] */
        next_event(c);
        size += parse_node(c);                        /* [map, name?, key, value] */
        if (is_null(L, -1)) lua_pop(L, 2);            /* a null value: the key is absent */
        else lua_rawset(L, t);
      }
      anchor_done(c, named, size);                    /* [map] */
      c->depth--;
      return size;
    }

    default:
      fail_at(c, ev->start_mark, "unexpected event");
  }
  return 0;
}

/*
** decode_stream(parser, text, name, all, array_mt): under lua_pcall. Pushes the first
** document (all false) or an array of all documents.
*/
static int decode_stream(lua_State *L) {
  Ctx c;
  int docs = 0, all;
  lua_Integer ndoc = 0;
  memset(&c, 0, sizeof c);
  c.L = L;
  c.p = (Parser *)lua_touserdata(L, 1);
  c.text = lua_tolstring(L, 2, &c.len);
  c.name = lua_tostring(L, 3);
  all = lua_toboolean(L, 4);
  c.array_mt = lua_istable(L, 5) ? 5 : 0;
  c.depth = 0;
  lua_settop(L, 5);
  if (all) {
    lua_newtable(L);                                  /* [.., docs] */
    docs = lua_gettop(L);
    if (c.array_mt) {
      lua_pushvalue(L, c.array_mt);
      lua_setmetatable(L, docs);
    }
  }
  next_event(&c);                                     /* STREAM-START */
  while (next_event(&c)->type == YAML_DOCUMENT_START_EVENT) {
    lua_newtable(L);                                  /* [.., anchors] */
    c.anchors = lua_gettop(L);
    lua_newtable(L);                                  /* [.., anchors, sizes] */
    c.sizes = lua_gettop(L);
    c.aliased = 0;
    next_event(&c);
    parse_node(&c);                                   /* [.., anchors, sizes, root] */
    next_event(&c);                                   /* DOCUMENT-END */
    if (!all) return 1;
    lua_rawseti(L, docs, ++ndoc);
    lua_pop(L, 2);                                    /* anchors, sizes */
  }
  if (!all) push_null(L);  /* an empty stream: the null document */
  return 1;
}

/*
** core.decode(text, name, all, array_mt) -> value | nil, message, "EYAML"
** A document that is not well-formed is a failure of the world, not an error.
*/
static int l_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "input");
  int all = lua_toboolean(L, 3), status;
  Parser *p;
  lua_settop(L, 4);
  p = (Parser *)lua_newuserdatauv(L, sizeof(Parser), 0);  /* [.., box] box first */
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, PARSER_MT);
  if (!yaml_parser_initialize(&p->parser)) return luaL_error(L, "yaml.decode: not enough memory");
  p->parser_live = 1;                                     /* acquire second */
  yaml_parser_set_input_string(&p->parser, (const unsigned char *)text, len);
  yaml_parser_set_encoding(&p->parser, YAML_UTF8_ENCODING);
  lua_pushcfunction(L, decode_stream);
  lua_pushvalue(L, 5);                                    /* box */
  lua_pushvalue(L, 1);
  lua_pushstring(L, name);
  lua_pushboolean(L, all);
  lua_pushvalue(L, 4);                                    /* array metatable */
  status = lua_pcall(L, 5, 1, 0);                         /* [.., box, result|error] */
  lua_pushcfunction(L, parser_close);
  lua_pushvalue(L, 5);
  lua_call(L, 1, 0);                                      /* free libyaml's memory now */
  if (status == LUA_OK) return 1;
  if (status != LUA_ERRRUN) return lua_error(L);          /* out of memory: raise */
  lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushliteral(L, "EYAML");
  return 3;
}

/* core.resolve(text): the value a plain scalar with this text has (the encoder asks). */
static int l_resolve(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  push_plain(L, s, n);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"decode", l_decode},
  {"resolve", l_resolve},
  {NULL, NULL}
};

int luaopen_relua_core_yaml(lua_State *L) {
  if (luaL_newmetatable(L, PARSER_MT)) {
    lua_pushcfunction(L, parser_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, parser_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}
