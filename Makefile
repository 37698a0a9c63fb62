# relua: build, deps, test, demo, bench, install.
# `make` builds ./relua; `make test` and `make demo` install what is missing first.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wpedantic -Werror
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Lazy modules: host modules whose libraries are heavy to load (libcurl alone brings in
# some thirty shared libraries: gnutls, krb5, ldap...; libcrypto is large). Each is built as a shared object
# that the binary carries inside and loads on the first require, so `relua -e ''` does
# not pay for libraries it does not use. `make LAZY=` links everything directly.
LAZY       ?= http git archive crypto readline store_pg
LIBS_http  := libcurl
LIBS_git   := libgit2
LIBS_archive := libarchive
LIBS_crypto := libcrypto
LIBS_readline := readline
LIBS_store_pg := libpq
MAIN_PKGS  := lua5.4 yaml-0.1
ALL_PKGS   := $(MAIN_PKGS) libcurl libgit2 libarchive libcrypto readline libpq
CJSON      := -l:liblua5.4-cjson.so.0

# Evaluated when used, so a sub-make after `make deps` sees freshly installed packages.
PKG_CFLAGS  = $(shell pkg-config --cflags $(ALL_PKGS))
BASE_FLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -Ihost -Ibuild/gen \
              -DRELUA_VERSION='"$(VERSION)"'

HOST_SRC   := $(sort $(wildcard host/*.c))
HOST_HDR   := $(wildcard host/*.h)
LAZY_SRC   := $(filter $(LAZY:%=host/%.c),$(HOST_SRC))
LAZY_STEMS := $(LAZY_SRC:host/%.c=%)
MAIN_SRC   := $(filter-out $(LAZY_SRC),$(HOST_SRC))
LIB_SRC    := $(shell find lib -name '*.lua' | sort)
OBJ        := $(MAIN_SRC:host/%.c=build/obj/%.o) build/obj/embedded.o build/obj/lazy.o
LAZY_SO    := $(LAZY_STEMS:%=build/lazy/%.so)
MAIN_LIBS   = $(shell pkg-config --libs $(MAIN_PKGS)) $(CJSON) -ldl -lm
ALL_LIBS    = $(shell pkg-config --libs $(ALL_PKGS)) $(CJSON) -ldl -lm
# The ASan build links every module directly: sanitizer reports want real file names.
ASAN_OBJ   := $(HOST_SRC:host/%.c=build/asan/%.o) build/asan/embedded.o
CTEST_SRC  := $(sort $(wildcard tests/c/*.c))
CTEST_BIN  := $(CTEST_SRC:tests/c/%.c=build/ctest/%)

.PHONY: all deps test check asan ctest bench demo install clean
all: relua

deps:
	@tools/deps.sh

relua: $(OBJ)
	$(CC) $(CFLAGS) -rdynamic -o $@ $(OBJ) $(MAIN_LIBS)

# The host's C modules are found by their luaopen_relua_* definitions.
build/gen/modules.h: $(HOST_SRC) tools/modules.sh Makefile
	@mkdir -p $(@D)
	tools/modules.sh RELUA_MODULE $(MAIN_SRC) > $@.tmp && mv $@.tmp $@
build/gen/lazy.h: $(HOST_SRC) tools/modules.sh Makefile
	@mkdir -p $(@D)
	tools/modules.sh RELUA_LAZY $(LAZY_SRC) > $@.tmp && mv $@.tmp $@
build/gen/modules-all.h: $(HOST_SRC) tools/modules.sh Makefile
	@mkdir -p $(@D)
	tools/modules.sh RELUA_MODULE $(HOST_SRC) > $@.tmp && mv $@.tmp $@
build/gen/lazy-none.h:
	@mkdir -p $(@D)
	echo "/* no lazy modules */" > $@
GEN_H := build/gen/modules.h build/gen/lazy.h build/gen/modules-all.h build/gen/lazy-none.h

# lib/ is carried inside the binary.
build/gen/embedded.c: $(LIB_SRC) tools/embed.lua
	@mkdir -p $(@D)
	lua5.4 tools/embed.lua lib $@ $(LIB_SRC)

build/obj/%.o: host/%.c $(HOST_HDR) $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(CFLAGS) -c -o $@ $<
build/obj/embedded.o: build/gen/embedded.c
	$(CC) $(BASE_FLAGS) $(CFLAGS) -c -o $@ $<
build/lazy/%.so: host/%.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(CFLAGS) -fPIC -shared -o $@ $< $(shell pkg-config --libs $(LIBS_$*))
build/gen/lazy.S: $(LAZY_SO) tools/lazy.sh
	@mkdir -p $(@D)
	tools/lazy.sh build/lazy $(LAZY_STEMS) > $@
build/obj/lazy.o: build/gen/lazy.S
	$(CC) -c -o $@ $<

# The same host under AddressSanitizer + UndefinedBehaviorSanitizer.
ASAN_DEFS := -DRELUA_MODULES_H='"modules-all.h"' -DRELUA_LAZY_H='"lazy-none.h"'
asan: build/asan/relua
build/asan/relua: $(ASAN_OBJ)
	$(CC) $(SAN_FLAGS) -g -rdynamic -o $@ $(ASAN_OBJ) $(ALL_LIBS)
build/asan/%.o: host/%.c $(HOST_HDR) $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(ASAN_DEFS) $(SAN_FLAGS) -O1 -g -c -o $@ $<
build/asan/embedded.o: build/gen/embedded.c
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -O1 -g -c -o $@ $<
# C tests link the host's objects (all but main) under the sanitizers.
ctest: $(CTEST_BIN)
build/ctest/%: tests/c/%.c $(filter-out build/asan/main.o,$(ASAN_OBJ))
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -g -o $@ $^ $(ALL_LIBS)

test: deps
	@$(MAKE) --no-print-directory all asan ctest
	@tests/run-all.sh

check: test

bench: deps
	@$(MAKE) --no-print-directory all build/bench/spawn_baseline build/bench/linked_floor
	@./relua bench/run.lua

# Baselines of bench/host_bench.lua: posix_spawn+waitpid in C, and the same program linked
# against exactly the shared libraries relua needs (the start-up floor of dynamic linking).
build/bench/spawn_baseline: bench/spawn_baseline.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -o $@ $<
build/bench/linked_floor: bench/spawn_baseline.c relua
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -o $@ $< -Wl,--no-as-needed \
	  $$(readelf -d relua | sed -n 's/.*Shared library: \[\(.*\)\]/-l:\1/p')

demo: deps
	@$(MAKE) --no-print-directory all
	@./relua demo/demo.lua

install: relua
	install -D -m 0755 relua $(DESTDIR)$(PREFIX)/bin/relua
	install -d $(DESTDIR)$(PREFIX)/share/relua
	cp -R recipes playbooks $(DESTDIR)$(PREFIX)/share/relua/

clean:
	rm -rf build relua
