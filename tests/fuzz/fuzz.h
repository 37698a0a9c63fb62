/*
** fuzz.h: what the libFuzzer harnesses share. Each harness feeds the bytes to one of
** relua's decoders inside a fresh Lua state, under lua_pcall (a decoder may raise only as
** a Lua error, never crash), then checks a property of what came back. A crash, an
** AddressSanitizer or UBSan report, a leak or a failed property stops the fuzzer with a
** non-zero exit, which fails `make test` / `make fuzz`.
*/
#ifndef RELUA_FUZZ_H
#define RELUA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lualib.h"
#include "lauxlib.h"

#include "relua.h"

/* A property that must hold: report it and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz: property failed: %s: ", #cond);                   \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* A Lua state with a memory cap, so a pathological input is an error, not an OOM kill. */
typedef struct FuzzMem {
  size_t used, cap;
} FuzzMem;

static void *fuzz_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  FuzzMem *m = (FuzzMem *)ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    free(ptr);
    m->used -= osize;
    return NULL;
  }
  if (nsize > osize && m->used + (nsize - osize) > m->cap) return NULL;
  ptr = realloc(ptr, nsize);
  if (ptr != NULL) m->used = m->used - osize + nsize;
  return ptr;
}

static lua_State *fuzz_state(FuzzMem *m) {
  lua_State *L;
  m->used = 0;
  m->cap = (size_t)256 << 20;
  L = lua_newstate(fuzz_alloc, m);
  if (L == NULL) abort();
  return L;
}

#endif
