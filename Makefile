# asyncrt build.  `make help` lists the targets.
PREFIX    ?= /usr/local
LUADIR    ?= $(PREFIX)/share/lua/5.1
LIBDIR    ?= $(PREFIX)/lib/lua/5.1
BINDIR    ?= $(PREFIX)/bin
CC        ?= cc
CFLAGS    ?= -O2 -g
LUAJIT_INC ?= /usr/include/luajit-2.1
WARN      := -std=c11 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
             -Wstrict-prototypes -Wpointer-arith -pedantic
BUILD     := build
# module paths of this checkout, for the scripts that make runs with luajit
LUAENV    := LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;;" \
             LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;"

# every module of the Lua tree (lua/async/<layer>/*.lua), generated ones included
LUA_SRC    = $(sort $(shell find lua -name '*.lua'))

CORE_SRC  := $(filter-out src/core/test%,$(wildcard src/core/*.c))
CORE_HDR  := $(wildcard src/core/*.h)
CORE_LIB  := $(BUILD)/async_core.so
CTEST_SRC := $(wildcard src/core/test/*.c)

.PHONY: all deps test check sanitize valgrind bench fuzz install uninstall clean \
        dev-env run help lint

all: $(CORE_LIB) $(BUILD)/test_core $(BUILD)/asyncrt

help:
	@echo "make deps      install missing Debian packages (as root) or print the apt-get line"
	@echo "make all       build the C core ($(CORE_LIB)) and its test runner"
	@echo "make test      build, run the C tests, the busted specs, luacheck and the rock check"
	@echo "make sanitize  C tests and specs under ASan+UBSan"
	@echo "make valgrind  C tests under valgrind (leak check)"
	@echo "make bench     benchmarks against the peers (node + npm for the JS peers)"
	@echo "make fuzz      long fuzz runs (HTML scanner, then $(FUZZ_DRIVERS); FUZZ_SEED=n replays)"
	@echo "make run       the main job: the example app"
	@echo "make install   install into PREFIX=$(PREFIX)"
	@echo "make dev-env   print LUA_PATH/LUA_CPATH exports for this checkout"

deps:
	@tools/deps.sh core ngx

$(BUILD)/core/%.o: src/core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC -c $< -o $@

$(CORE_LIB): $(CORE_SRC:src/core/%.c=$(BUILD)/core/%.o)
	$(CC) -shared $(CFLAGS) -o $@ $^

$(BUILD)/test_core: $(CTEST_SRC) $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Isrc/core -o $@ $(CTEST_SRC) $(CORE_SRC)

# asyncrt, the interpreter (src/asyncrt): LuaJIT + luv on one libuv loop, the
# C core linked in and exported (-Wl,-E) so the Lua side can use ffi.C.
RT_SRC    := $(wildcard src/asyncrt/*.c)
RT_HDR    := $(wildcard src/asyncrt/*.h) $(BUILD)/rt/boot.h
RT_INC    := -isystem $(LUAJIT_INC) -isystem /usr/include/lua5.1 -I$(BUILD)/rt
RT_LIBS   := -lluajit-5.1 -lm -ldl
LUV_VERSION := $(shell pkg-config --modversion lua5.1-luv 2>/dev/null)

$(BUILD)/rt/boot.h: src/asyncrt/boot.lua src/asyncrt/embed.lua
	@mkdir -p $(dir $@)
	luajit src/asyncrt/embed.lua $< $@ asyncrt_boot_lua

$(BUILD)/rt/%.o: src/asyncrt/%.c $(RT_HDR)
	$(CC) $(WARN) $(CFLAGS) $(RT_INC) -DASYNCRT_LUV_VERSION='"$(LUV_VERSION)"' -c $< -o $@

$(BUILD)/asyncrt: $(RT_SRC:src/asyncrt/%.c=$(BUILD)/rt/%.o) $(CORE_SRC:src/core/%.c=$(BUILD)/core/%.o)
	$(CC) $(CFLAGS) -Wl,-E -o $@ $^ $(RT_LIBS)

test: deps all
	@tools/run-tests.sh

check: test

lint:
	luacheck -q lua spec bench examples

sanitize:
	@mkdir -p $(BUILD)/san
	$(CC) $(WARN) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=undefined -Isrc/core -o $(BUILD)/san/test_core $(CTEST_SRC) $(CORE_SRC)
	$(BUILD)/san/test_core
	$(CC) $(WARN) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=undefined -fPIC -shared -o $(BUILD)/san/async_core.so $(CORE_SRC)
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASYNC_CORE_LIB=$(CURDIR)/$(BUILD)/san/async_core.so \
	  busted --lua=luajit -o utfTerminal --exclude-tags=loop \
	  --exclude-pattern=asyncrt_cli_spec --exclude-pattern=ngx_spec spec
	@echo "(specs that start other programs, asyncrt and nginx, run in make test, not under the sanitizers)"

valgrind: $(BUILD)/test_core
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all $(BUILD)/test_core

bench: all
	@tools/deps.sh bench || true
	@echo "== kernel: js-reactivity-benchmark shapes vs alien-signals and preact (docs/performance.md)"
	$(LUAENV) luajit bench/run.lua
	@echo "== templates vs hand-written concatenation and lua-cosmo"
	$(LUAENV) luajit bench/template.lua
	@echo "== router: 1,000 routes"
	$(LUAENV) luajit bench/router.lua
	@echo "== runtime lifecycle: create_app + destroy per request, 10/100/1,000 routes"
	$(LUAENV) luajit bench/lifecycle.lua
	@echo "== scanner: Lua patterns vs LPeg"
	$(LUAENV) luajit bench/scanner.lua
	@echo "== SSR pages vs hand-written concatenation and lua-cosmo"
	$(LUAENV) luajit bench/render.lua
	@echo "== streaming: time to first byte (luv loop)"
	build/asyncrt bench/ttfb.lua
	@echo "== asyncrt startup vs luajit and node"
	$(LUAENV) luajit bench/startup.lua
	@echo "== 100,000 concurrent Async.delay coroutines"
	build/asyncrt bench/timers.lua

FUZZ_DRIVERS := chain router html json paths kernel_model

fuzz: all
	@FUZZ_LONG=1 luajit spec/fuzz/run.lua
	@for d in $(FUZZ_DRIVERS); do FUZZ_LONG=1 luajit spec/fuzz/$$d.lua || exit 1; done

run: deps all
	@echo "== the kernel on real timers (build/asyncrt examples/kernel.lua)"
	build/asyncrt examples/kernel.lua
	@echo
	@echo "== the product page of the seed, rendered and streamed in-process"
	build/asyncrt examples/render.lua product /products/sku-1 --stream
	@echo
	@echo "(serving over HTTP is not built yet: see README.md, Status)"

dev-env:
	@echo 'export LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;"'

install: all
	install -d $(DESTDIR)$(LIBDIR)
	@for f in $(LUA_SRC); do \
	  d=$(DESTDIR)$(LUADIR)/$$(dirname $${f#lua/}); install -d $$d && install -m 0644 $$f $$d/ || exit 1; \
	done
	install -m 0755 $(CORE_LIB) $(DESTDIR)$(LIBDIR)/async_core.so
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BUILD)/asyncrt $(DESTDIR)$(BINDIR)/asyncrt

uninstall:
	rm -rf $(DESTDIR)$(LUADIR)/async $(DESTDIR)$(LIBDIR)/async_core.so $(DESTDIR)$(BINDIR)/asyncrt

clean:
	rm -rf $(BUILD)
