/*
** spawn_baseline: the C baseline of bench/host_bench.lua. Runs a program N times with
** posix_spawn + waitpid (nothing else: no pipes, no environment work) and prints the mean
** seconds per run. usage: spawn_baseline N program [args...]
** With no arguments it does nothing: linked against relua's shared libraries (Makefile's
** build/bench/linked_floor) it measures what dynamic linking alone costs at start-up.
*/
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
  struct timespec a, b;
  int i, n, status;
  if (argc == 1) return 0;
  if (argc < 3) {
    fprintf(stderr, "usage: spawn_baseline N program [args...]\n");
    return 2;
  }
  n = atoi(argv[1]);
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (i = 0; i < n; i++) {
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
    if (rc != 0) {
      fprintf(stderr, "spawn_baseline: cannot run %s\n", argv[2]);
      return 1;
    }
    if (waitpid(pid, &status, 0) != pid) return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.9f\n", ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9) / n);
  return 0;
}
