# relua: build, deps, test, demo, bench, install.
# `make` builds ./relua; `make test` and `make demo` install what is missing first.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
CC         ?= cc
CFLAGS     ?= -O2 -g
PKGS       := lua5.4 libgit2 libcurl yaml-0.1 libcrypto readline libarchive
# Evaluated when used, so a sub-make after `make deps` sees freshly installed packages.
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS)) -l:liblua5.4-cjson.so.0
WARN       := -Wall -Wextra -Wpedantic -Werror
BASE_FLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -Ihost -Ibuild/gen \
              -DRELUA_VERSION='"$(VERSION)"'
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

HOST_SRC   := $(sort $(wildcard host/*.c))
HOST_HDR   := $(wildcard host/*.h)
LIB_SRC    := $(shell find lib -name '*.lua' | sort)
OBJ        := $(HOST_SRC:host/%.c=build/obj/%.o) build/obj/embedded.o
ASAN_OBJ   := $(HOST_SRC:host/%.c=build/asan/%.o) build/asan/embedded.o
CTEST_SRC  := $(sort $(wildcard tests/c/*.c))
CTEST_BIN  := $(CTEST_SRC:tests/c/%.c=build/ctest/%)

.PHONY: all deps test check asan ctest bench demo install clean
all: relua

deps:
	@tools/deps.sh

relua: $(OBJ)
	$(CC) $(CFLAGS) -rdynamic -o $@ $(OBJ) $(PKG_LIBS) -lm

# The host's C modules are found by their luaopen_relua_* definitions.
build/gen/modules.h: $(HOST_SRC) tools/modules.sh
	@mkdir -p $(@D)
	tools/modules.sh $(HOST_SRC) > $@.tmp && mv $@.tmp $@

# lib/ is carried inside the binary.
build/gen/embedded.c: $(LIB_SRC) tools/embed.lua
	@mkdir -p $(@D)
	lua5.4 tools/embed.lua lib $@ $(LIB_SRC)

build/obj/%.o: host/%.c $(HOST_HDR) build/gen/modules.h
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(CFLAGS) -c -o $@ $<
build/obj/embedded.o: build/gen/embedded.c
	$(CC) $(BASE_FLAGS) $(CFLAGS) -c -o $@ $<

# The same host under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: build/asan/relua
build/asan/relua: $(ASAN_OBJ)
	$(CC) $(SAN_FLAGS) -g -rdynamic -o $@ $(ASAN_OBJ) $(PKG_LIBS) -lm
build/asan/%.o: host/%.c $(HOST_HDR) build/gen/modules.h
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -O1 -g -c -o $@ $<
build/asan/embedded.o: build/gen/embedded.c
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -O1 -g -c -o $@ $<

# C tests link the host's objects (all but main) under the sanitizers.
ctest: $(CTEST_BIN)
build/ctest/%: tests/c/%.c $(filter-out build/asan/main.o,$(ASAN_OBJ))
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -g -o $@ $^ $(PKG_LIBS) -lm

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
