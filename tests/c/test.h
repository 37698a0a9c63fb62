/* A minimal C test harness: CHECK(cond) counts, DONE() prints "C: N passed, N failed". */
#ifndef RELUA_TEST_H
#define RELUA_TEST_H
#include <stdio.h>
static int t_pass, t_fail;
#define CHECK(c) do { if (c) t_pass++; else { t_fail++; \
  fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); } } while (0)
#define DONE() (printf("C: %d passed, %d failed\n", t_pass, t_fail), t_fail != 0)
#endif
