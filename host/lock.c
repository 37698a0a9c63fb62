/*
** lock.c: the one lock implementation of the host: an exclusive flock(2) on a file that
** records its holder ("pid=N host=H since=T", see store.h). The kernel drops the lock
** when the holder dies, so a crashed run never leaves a stale lock. Used by the folder
** store (tickets and lanes) and by relua.fs.lock; the record is parsed in one place,
** relua_store_push_holder (store.c).
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "relua.h"

/*
** Takes the lock of path (created when absent), writing record into it once held. wait:
** 0 try once, < 0 until free, else seconds; Ctrl-C interrupts a wait (EINTR). Returns
** the descriptor (>= 0) holding the lock; -1 with errno EWOULDBLOCK when another holds
** it (*busy_fd then is an open read descriptor of the file, for its record; the caller
** closes it), or another errno.
*/
int relua_lock_take(const char *path, const char *record, double wait, int *busy_fd) {
  struct timespec start, t;
  struct stat held, now;
  size_t rlen = strlen(record);
  int fd;
  *busy_fd = -1;
  clock_gettime(CLOCK_MONOTONIC, &start);
again:
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    struct timespec nap = {0, 20000000};
    double waited;
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      close(fd);
      errno = err;
      return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    waited = (double)(t.tv_sec - start.tv_sec) + (double)(t.tv_nsec - start.tv_nsec) / 1e9;
    if (wait == 0 || (wait > 0 && waited >= wait)) {
      *busy_fd = fd;
      errno = EWOULDBLOCK;
      return -1;
    }
    if (relua_interrupted()) {
      close(fd);
      errno = EINTR;
      return -1;
    }
    nanosleep(&nap, NULL);
  }
  /* Held, but the holder before may have removed the file before letting it go (a run
     that recorded nothing tidies up): then this lock guards nothing; take the file now at
     the path. */
  if (fstat(fd, &held) != 0 || stat(path, &now) != 0 || held.st_ino != now.st_ino ||
      held.st_dev != now.st_dev) {
    flock(fd, LOCK_UN);
    close(fd);
    goto again;
  }
  /* The record replaces the last holder's; a reader that catches it empty says
     "the run is just starting". */
  if (ftruncate(fd, 0) != 0 || pwrite(fd, record, rlen, 0) != (ssize_t)rlen) {
    int err = errno;
    flock(fd, LOCK_UN);
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/* Releases a lock taken by relua_lock_take: the record goes, then the lock. */
void relua_lock_release(int fd) {
  if (fd < 0) return;
  if (ftruncate(fd, 0) != 0) { /* the record goes; the lock goes regardless */ }
  flock(fd, LOCK_UN);
  close(fd);
}

/*
** 1 when someone holds the lock of path (the file exists and cannot be locked shared),
** else 0. Never creates the file.
*/
int relua_lock_held(const char *path) {
  int r, fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  while ((r = flock(fd, LOCK_SH | LOCK_NB)) != 0 && errno == EINTR) {}
  close(fd);   /* releases ours, if taken */
  return r != 0;
}

/* Pushes the record in the lock file fd (read from the start; "" when unreadable). */
void relua_lock_push_record(lua_State *L, int fd) {
  luaL_Buffer b;
  char *p;
  ssize_t r;
  luaL_buffinit(L, &b);
  p = luaL_prepbuffsize(&b, 1024);
  while ((r = pread(fd, p, 1024, 0)) < 0 && errno == EINTR) {}
  luaL_addsize(&b, r > 0 ? (size_t)r : 0);
  luaL_pushresult(&b);
}
