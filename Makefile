# relua: build, deps, test, demo, bench, install.
# `make` builds ./relua; `make test` and `make demo` install what is missing first.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
# The lazy modules' shared objects. The binary looks for them in ../lib/relua beside itself
# first, then in LIBDIR as it was when the binary was linked.
LIBDIR     ?= $(PREFIX)/lib/relua
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wpedantic -Werror
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# Where everything is built (`make B=build/nolazy LAZY=` keeps a second build apart).
B          ?= build

# The host modules, in one place: host/STEM.c defines luaopen_relua_core_STEM, the Lua
# module relua.core.STEM. A new module is one word here (and its libraries below).
MODULES    := error fs json ledger proc secret store version yaml \
              http git archive crypto readline store_pg
# Lazy modules: host modules whose libraries are heavy to load (libcurl alone brings in
# some thirty shared libraries: gnutls, krb5, ldap...; libcrypto is large). Each is built as a shared object
# loaded on the first require, so `relua -e ''` does not pay for libraries it does not use:
# installed as files beside the binary (LIBDIR), or carried inside it by `make single`.
# `make LAZY=` links everything directly.
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

ifneq ($(filter-out $(MODULES),$(LAZY)),)
$(error LAZY names $(filter-out $(MODULES),$(LAZY)), which is not in MODULES)
endif
LINKED     := $(filter-out $(LAZY),$(MODULES))
LINKED_PKGS := $(MAIN_PKGS) $(foreach m,$(LINKED),$(LIBS_$(m)))

# Evaluated when used, so a sub-make after `make deps` sees freshly installed packages.
PKG_CFLAGS  = $(shell pkg-config --cflags $(ALL_PKGS))
BASE_FLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -Ihost -I$(B)/gen \
              -DRELUA_VERSION='"$(VERSION)"'

HOST_SRC   := $(sort $(wildcard host/*.c))
HOST_HDR   := $(wildcard host/*.h)
LAZY_SRC   := $(LAZY:%=host/%.c)
MAIN_SRC   := $(filter-out $(LAZY_SRC),$(HOST_SRC))
LIB_SRC    := $(shell find lib -name '*.lua' | sort)
OBJ        := $(MAIN_SRC:host/%.c=$(B)/obj/%.o) $(B)/obj/embedded.o
LAZY_SO    := $(LAZY:%=$(B)/lib/relua/%.so)
MAIN_LIBS   = $(shell pkg-config --libs $(LINKED_PKGS)) $(CJSON) -ldl -lm
ALL_LIBS    = $(shell pkg-config --libs $(ALL_PKGS)) $(CJSON) -ldl -lm
# The same host under AddressSanitizer + UndefinedBehaviorSanitizer, loading its lazy
# modules from files beside it as an installed relua does.
ASAN_OBJ   := $(MAIN_SRC:host/%.c=$(B)/asan/obj/%.o) $(B)/asan/obj/embedded.o
ASAN_SO    := $(LAZY:%=$(B)/asan/lib/relua/%.so)
CTEST_SRC  := $(sort $(wildcard tests/c/*.c))
CTEST_BIN  := $(CTEST_SRC:tests/c/%.c=$(B)/ctest/%)

.SECONDARY:
.PHONY: all deps lint test test-nolazy check asan ctest single share man bench demo install uninstall clean FORCE
.PHONY: fuzz fuzz-build crashtest faulttest
all:

deps:
	@tools/deps.sh

# ./relua is a link to $(B)/bin/relua, which finds its modules in $(B)/lib/relua: the
# layout of an installed relua (bin/relua, lib/relua/*.so). Another B links $(B)/relua.
LINK       := $(if $(filter build,$(B)),relua,$(B)/relua)
all: $(LINK) share
$(LINK): $(B)/bin/relua | $(LAZY_SO)
	ln -sfn $(abspath $(B))/bin/relua $@
$(B)/bin/relua: $(OBJ) | $(LAZY_SO)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -rdynamic -o $@ $(OBJ) $(MAIN_LIBS)

# The configuration the generated files depend on: they change when it does.
$(B)/gen/config: FORCE
	@mkdir -p $(@D)
	@echo 'LAZY=$(LAZY) MODULES=$(MODULES)' | cmp -s - $@ || echo 'LAZY=$(LAZY) MODULES=$(MODULES)' > $@
# The module tables of host/main.c, from MODULES and LAZY.
$(B)/gen/modules.h: $(B)/gen/config
	printf 'RELUA_MODULE(core_%s, %s)\n' $(foreach m,$(LINKED),$(m) $(m)) > $@
$(B)/gen/lazy.h: $(B)/gen/config
	printf '/* lazy modules */\n' > $@
	$(if $(LAZY),printf 'RELUA_LAZY(core_%s, %s)\n' $(foreach m,$(LAZY),$(m) $(m)) >> $@)
GEN_H := $(B)/gen/modules.h $(B)/gen/lazy.h

# lib/ is carried inside the binary, precompiled by the liblua the binary links (a start-up
# loads bytecode rather than compiling the modules it requires).
$(B)/gen/embedded.c: $(LIB_SRC) tools/embed.lua $(B)/tools/luadump
	@mkdir -p $(@D)
	lua5.4 tools/embed.lua lib $@ --dump $(B)/tools/luadump $(LIB_SRC)
$(B)/tools/luadump: tools/luadump.c
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) $(shell pkg-config --cflags lua5.4) $(CFLAGS) -o $@ $< $(shell pkg-config --libs lua5.4)

# main.c's compiled-in fallbacks for the lazy modules and the shared data: this build's own.
MAIN_DEFS = -DRELUA_LIBDIR='"$(abspath $(@D)/../lib/relua)"' -DRELUA_DATADIR='"$(abspath $(SHARE))"'
$(B)/obj/%.o: host/%.c $(HOST_HDR) $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(CFLAGS) $(if $(filter main,$*),$(MAIN_DEFS)) -c -o $@ $<
$(B)/obj/embedded.o: $(B)/gen/embedded.c
	$(CC) $(BASE_FLAGS) $(CFLAGS) -c -o $@ $<
$(B)/lib/relua/%.so: host/%.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(CFLAGS) -fPIC -shared -o $@ $< $(shell pkg-config --libs $(LIBS_$*))

# Data the binary finds in ../share/relua beside itself (installed: DATADIR/relua): the
# shipped recipes (relua init's templates) and playbooks, and the LuaLS type definitions
# (tools/types.lua over lib/, plus the hand-written shapes in types/).
SHARE      := $(B)/share/relua
TYPES_SRC  := $(shell find types -name '*.lua' | sort)
share: $(SHARE)/recipes $(SHARE)/playbooks $(SHARE)/types/.stamp
$(SHARE)/recipes $(SHARE)/playbooks:
	@mkdir -p $(@D)
	ln -sfn $(abspath $(@F)) $@
$(SHARE)/types/.stamp: $(LIB_SRC) $(TYPES_SRC) tools/types.lua
	rm -rf $(@D) && mkdir -p $(@D)
	lua5.4 tools/types.lua $(@D) $(LIB_SRC)
	cp -R types/. $(@D)/
	touch $@

# The man pages, from scdoc sources; relua(1)'s commands come from relua.cli's table.
MAN        := $(B)/man/relua.1 $(B)/man/relua-recipe.5
man: $(MAN)
$(B)/man/relua.1: doc/man/relua.1.scd tools/man.lua $(LINK)
	@mkdir -p $(@D)
	./$(LINK) tools/man.lua $< | scdoc > $@.tmp && mv $@.tmp $@
$(B)/man/relua-recipe.5: doc/man/relua-recipe.5.scd
	@mkdir -p $(@D)
	scdoc < $< > $@.tmp && mv $@.tmp $@

# `make single`: one self-contained file carrying its lazy modules (loaded from a memfd, or
# a temporary file where /proc or memfd_create is unavailable).
single: $(B)/single/relua
$(B)/gen/lazy.S: $(LAZY_SO) tools/lazy.sh
	@mkdir -p $(@D)
	tools/lazy.sh $(B)/lib/relua $(LAZY) > $@
$(B)/obj/lazy.o: $(B)/gen/lazy.S
	$(CC) -c -o $@ $<
$(B)/single/relua: $(OBJ) $(B)/obj/lazy.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -rdynamic -o $@ $(OBJ) $(B)/obj/lazy.o $(MAIN_LIBS)

asan: $(B)/asan/relua
$(B)/asan/relua: $(B)/asan/bin/relua | $(ASAN_SO)
	ln -sfn bin/relua $@
# LeakSanitizer (GCC 12) crashes ("Tracer caught signal 11") scanning the dynamic TLS of
# libraries dlopen'ed after start (libgit2, libcurl): the ASan binary links those libraries
# at start, and loads relua's own modules from ../lib/relua as an installed relua does.
$(B)/asan/bin/relua: $(ASAN_OBJ) | $(ASAN_SO)
	@mkdir -p $(@D)
	$(CC) $(SAN_FLAGS) -g -rdynamic -o $@ $(ASAN_OBJ) -Wl,--no-as-needed $(ALL_LIBS)
$(B)/asan/obj/%.o: host/%.c $(HOST_HDR) $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) $(if $(filter main,$*),$(MAIN_DEFS)) -O1 -g -c -o $@ $<
$(B)/asan/obj/embedded.o: $(B)/gen/embedded.c
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -O1 -g -c -o $@ $<
$(B)/asan/lib/relua/%.so: host/%.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -O1 -g -fPIC -shared -o $@ $< $(shell pkg-config --libs $(LIBS_$*))
# C tests link the host's objects (all but main) under the sanitizers.
CTEST_OBJ  := $(filter-out $(B)/asan/obj/main.o,$(ASAN_OBJ)) $(LAZY_SRC:host/%.c=$(B)/asan/obj/%.o)
ctest: $(CTEST_BIN)
$(B)/ctest/%: tests/c/%.c $(CTEST_OBJ)
	@mkdir -p $(@D)
	$(CC) $(BASE_FLAGS) $(SAN_FLAGS) -g -o $@ $^ $(ALL_LIBS)

test: deps
	@$(MAKE) --no-print-directory all single man asan ctest fuzz-build
	@tests/run-all.sh

# Code health (CI runs it: .ci/run): luacheck over the Lua (.luacheckrc), shellcheck over
# the shell scripts, cppcheck over the host's C.
SHELL_SCRIPTS := .ci/run tests/run-all.sh tools/deps.sh tools/lazy.sh completions/relua.bash
lint:
	luacheck -q --no-color lib recipes playbooks tests
	shellcheck $(SHELL_SCRIPTS)
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	  --inline-suppr --suppress=missingIncludeSystem -D__linux__ -DRELUA_VERSION='"0"' \
	  -Ihost -I$(B)/gen host/

# The specs against a build that links every module directly (`make LAZY=`).
test-nolazy: deps
	@$(MAKE) --no-print-directory B=build/nolazy LAZY= all
	@RELUA_BIN=build/nolazy/relua RELUA_WARNINGS_FATAL=1 build/nolazy/relua tests/run.lua

check: test

# libFuzzer harnesses (tests/fuzz/*_fuzz.c), each linked with the host files it exercises,
# under AddressSanitizer + UndefinedBehaviorSanitizer. `make fuzz` runs each for
# FUZZ_SECONDS (default 300) from the seed corpus in tests/fuzz/corpus/NAME (what it
# finds goes to $(B)/fuzz/corpus-NAME); `make test` runs each for a few seconds. A crash,
# a sanitizer report, a leak or a failed property exits non-zero and fails the build.
FUZZ_CC      ?= clang-14
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SECONDS ?= 300
FUZZ_NAMES   := json yaml logfmt state playbook
FUZZ_SRC_json := host/json.c
FUZZ_SRC_yaml := host/yaml.c host/json.c
FUZZ_SRC_logfmt :=
FUZZ_SRC_state := host/ledger_state.c host/ledger.c host/ledger_log.c host/ledger_run.c \
                  host/ledger_crash.c host/store.c host/store_folder.c host/lock.c host/json.c \
                  host/error.c host/secret.c host/aux.c
FUZZ_SRC_playbook := $(filter-out host/main.c,$(MAIN_SRC))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(B)/fuzz/%)
fuzz-build: $(FUZZ_BIN)
$(B)/fuzz/json: $(FUZZ_SRC_json)
$(B)/fuzz/yaml: $(FUZZ_SRC_yaml)
$(B)/fuzz/logfmt: lib/relua/ticket.lua
$(B)/fuzz/state: $(FUZZ_SRC_state)
$(B)/fuzz/playbook: $(FUZZ_SRC_playbook) $(LIB_SRC)
$(B)/fuzz/%: tests/fuzz/%_fuzz.c tests/fuzz/fuzz.h $(HOST_HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(BASE_FLAGS) $(FUZZ_FLAGS) -o $@ $< $(filter %.c,$(FUZZ_SRC_$*)) $(shell pkg-config --libs $(MAIN_PKGS)) $(CJSON) -lm
fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
	  mkdir -p $(B)/fuzz/corpus-$$n; \
	  echo "== fuzz $$n ($(FUZZ_SECONDS) s)"; \
	  $(B)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    $(B)/fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; \
	done

# The whole crash sweep: relua killed (strace fault injection) at every durable write,
# network call and fork of a real release with a tag, a PyPI and an npm publish, each
# point followed by plain re-runs (tests/support/crashsweep.lua). CRASH_EVERY=k tries
# every k-th point. `make test` runs its short form (tests/crashsweep_spec.lua).
crashtest: deps
	@$(MAKE) --no-print-directory all
	@RELUA_BIN=./relua RELUA_WARNINGS_FATAL=1 ./relua tests/crash/sweep.lua $(CRASH_EVERY)

# The whole registry-fault matrix: every stage of a publish x every fault kind, for PyPI,
# npm and the forge's assets (tests/publish_faults_spec.lua; `make test` runs a short form).
faulttest: deps
	@$(MAKE) --no-print-directory all
	@RELUA_FAULTS_FULL=1 RELUA_BIN=./relua RELUA_WARNINGS_FATAL=1 ./relua tests/run.lua tests/publish_faults_spec.lua

bench:
	@tools/deps.sh bench
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

# `make demo`: the PyPI + npm recipe breaking half-way and recovered (demo/pypi-npm.lua);
# `make demo DEMO=deploy`: the deploy release-run walkthrough (demo/deploy.lua).
DEMO       ?= pypi-npm
demo: deps
	@test -n "$(filter $(DEMO),pypi-npm deploy)" || { echo "make demo: no demo '$(DEMO)': DEMO=pypi-npm (the default) or DEMO=deploy" >&2; exit 2; }
	@$(MAKE) --no-print-directory all
	@./relua demo/$(DEMO).lua

# The installed binary differs from $(B)/bin/relua only by its compiled-in folders.
install: all man
	@mkdir -p $(B)/install
	$(CC) $(BASE_FLAGS) $(CFLAGS) -DRELUA_LIBDIR='"$(LIBDIR)"' -DRELUA_DATADIR='"$(DATADIR)/relua"' \
	  -c -o $(B)/install/main.o host/main.c
	$(CC) $(CFLAGS) -rdynamic -o $(B)/install/relua $(B)/install/main.o $(filter-out $(B)/obj/main.o,$(OBJ)) $(MAIN_LIBS)
	install -D -m 0755 $(B)/install/relua $(DESTDIR)$(BINDIR)/relua
	install -d $(DESTDIR)$(LIBDIR)
	$(if $(LAZY_SO),install -m 0644 $(LAZY_SO) $(DESTDIR)$(LIBDIR)/)
	install -d $(DESTDIR)$(DATADIR)/relua/types
	cp -R recipes playbooks $(DESTDIR)$(DATADIR)/relua/
	cd $(SHARE)/types && find . -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(DATADIR)/relua/types/{} \;
	install -D -m 0644 $(B)/man/relua.1 $(DESTDIR)$(MANDIR)/man1/relua.1
	install -D -m 0644 $(B)/man/relua-recipe.5 $(DESTDIR)$(MANDIR)/man5/relua-recipe.5
	install -D -m 0644 completions/relua.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/relua
	install -D -m 0644 completions/_relua $(DESTDIR)$(DATADIR)/zsh/site-functions/_relua

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/relua $(DESTDIR)$(MANDIR)/man1/relua.1 $(DESTDIR)$(MANDIR)/man5/relua-recipe.5
	rm -f $(DESTDIR)$(DATADIR)/bash-completion/completions/relua $(DESTDIR)$(DATADIR)/zsh/site-functions/_relua
	rm -rf $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DATADIR)/relua

clean:
	rm -rf $(B) relua
