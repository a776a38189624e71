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
# the C tests: test_core.c and the white-box helpers it shares with the fuzz
# driver (check.c); the core is built into them with the failing allocator
CTEST_SRC := src/core/test/test_core.c src/core/test/check.c
CTEST_DEF := -DAC_TEST_ALLOC -Isrc/core -Isrc/core/test
# the FFI declarations of the Lua side, generated from the headers
CDEF      := lua/async/kernel/cdef.lua
# async_bind (src/bind): a Lua C module, bind(fn, a, b) -> a C closure; the
# kernel's effect disposers (Lua closures are not compiled by LuaJIT). Not
# linked against LuaJIT: the host (luajit, nginx, asyncrt) provides the API.
BIND_SRC  := src/bind/bind.c
BIND_LIB  := $(BUILD)/async_bind.so

.PHONY: all deps test check sanitize sanitize-c valgrind bench bench-luajit-patch test-luajit-patch bench-core fuzz fuzz-core install uninstall clean \
        dev-env run help lint

# the first target is the default goal: `make` and `luarocks make` build
all: $(CORE_LIB) $(BIND_LIB) $(BUILD)/test_core $(BUILD)/asyncrt $(CDEF)

.PHONY: openresty-demo
# nginx in the foreground (Debian's nginx-light + the Lua module) serving the
# examples through require("async.ngx"): examples/openresty/nginx.conf
openresty-demo: all
	@examples/openresty/run.sh

help:
	@echo "make deps      install missing Debian packages (as root) or print the apt-get line"
	@echo "make all       build the C core ($(CORE_LIB)) and its test runner"
	@echo "make test      build, run the C tests, the busted specs, luacheck and the rock check"
	@echo "make sanitize  C tests and specs under ASan+UBSan"
	@echo "make valgrind  C tests under valgrind (leak check)"
	@echo "make bench     benchmarks against the peers (node + npm for the JS peers)"
	@echo "make bench-core  micro benchmark of the C core's hot paths (no Lua)"
	@echo "make fuzz-core libFuzzer on the C core (FUZZ_TIME=seconds, default 60)"
	@echo "make fuzz      long fuzz runs (HTML scanner, then $(FUZZ_DRIVERS); FUZZ_SEED=n replays)"
	@echo "make run       the main job: serve the examples' gallery on HOST:PORT (default 127.0.0.1:8080)"
	@echo "make openresty-demo  the counter and product examples inside nginx (PORT, default 8081)"
	@echo "make install   install into PREFIX=$(PREFIX)"
	@echo "make dev-env   print LUA_PATH/LUA_CPATH exports for this checkout"

deps:
	@tools/deps.sh core ngx browser

$(BUILD)/core/%.o: src/core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC -c $< -o $@

$(CORE_LIB): $(CORE_SRC:src/core/%.c=$(BUILD)/core/%.o)
	$(CC) -shared $(CFLAGS) -o $@ $^

$(BUILD)/test_core: $(CTEST_SRC) src/core/test/check.h $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CTEST_DEF) -o $@ $(CTEST_SRC) $(CORE_SRC)

# core.h first (constants, opaque ac_graph), then layout.h (the structs);
# the result must load under ffi.cdef, checked here and by the C tests
$(CDEF): src/core/core.h src/core/layout.h tools/cdef.lua
	@mkdir -p $(dir $@)
	luajit tools/cdef.lua $@ src/core/core.h src/core/layout.h
	luajit -e 'require("ffi").cdef(dofile("$@"))'

$(BUILD)/bench_core: src/core/test/bench_core.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O2 -g -Isrc/core -o $@ $< $(CORE_SRC)

bench-core: $(BUILD)/bench_core
	$(BUILD)/bench_core

FUZZ_TIME ?= 60
$(BUILD)/fuzz_core: src/core/test/fuzz_core.c src/core/test/check.c src/core/test/check.h $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	clang $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  $(CTEST_DEF) -o $@ src/core/test/fuzz_core.c src/core/test/check.c $(CORE_SRC)

fuzz-core: $(BUILD)/fuzz_core
	@mkdir -p $(BUILD)/fuzz-core-corpus
	$(BUILD)/fuzz_core -max_total_time=$(FUZZ_TIME) -max_len=512 $(BUILD)/fuzz-core-corpus

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

$(BIND_LIB): $(BIND_SRC)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(CFLAGS) -isystem $(LUAJIT_INC) -fPIC -shared -o $@ $<

$(BUILD)/rt/bind.o: $(BIND_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -isystem $(LUAJIT_INC) -c $< -o $@

$(BUILD)/asyncrt: $(RT_SRC:src/asyncrt/%.c=$(BUILD)/rt/%.o) $(BUILD)/rt/bind.o $(CORE_SRC:src/core/%.c=$(BUILD)/core/%.o)
	$(CC) $(CFLAGS) -Wl,-E -o $@ $^ $(RT_LIBS)

# HTTP shim (src/http): libhttp-parser and zlib behind a small C API for the
# FFI. Built as async_http.so (plain luajit, nginx) and linked into asyncrt
# (found through ffi.C there). The Lua declarations are generated from
# http.h into $(HTTP_CDEF) (not in git).
HTTP_SRC  := $(filter-out src/http/test%,$(wildcard src/http/*.c))
HTTP_HDR  := src/http/http.h
HTTP_OBJ  := $(HTTP_SRC:src/http/%.c=$(BUILD)/http/%.o)
HTTP_LIB  := $(BUILD)/async_http.so
HTTP_LIBS := -lhttp_parser -lz
HTTP_CDEF := lua/async/server/http_cdef.lua
HTEST_SRC := src/http/test/test_http.c src/http/test/transcript.c
HTEST_HDR := src/http/test/transcript.h
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_HTTP_SECONDS ?= 60

all: $(HTTP_LIB) $(BUILD)/test_http $(HTTP_CDEF)

$(BUILD)/http/%.o: src/http/%.c $(HTTP_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC -c $< -o $@

$(HTTP_LIB): $(HTTP_OBJ)
	$(CC) -shared $(CFLAGS) -o $@ $^ $(HTTP_LIBS)

$(BUILD)/test_http: $(HTEST_SRC) $(HTEST_HDR) $(HTTP_SRC) $(HTTP_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -Isrc/http -o $@ $(HTEST_SRC) $(HTTP_SRC) $(HTTP_LIBS)

$(HTTP_CDEF): $(HTTP_HDR) tools/cdef.lua
	luajit tools/cdef.lua $@ $(HTTP_HDR)

$(BUILD)/asyncrt: $(HTTP_OBJ)
RT_LIBS += $(HTTP_LIBS)

.PHONY: valgrind-http fuzz-http install-http uninstall-http

valgrind: valgrind-http
valgrind-http: $(BUILD)/test_http
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all $(BUILD)/test_http

install: install-http
install-http: all
	install -d $(DESTDIR)$(LUADIR)/async/server $(DESTDIR)$(LUADIR)/async/transport $(DESTDIR)$(LIBDIR)
	install -m 0644 lua/async/server/native.lua lua/async/server/gzip.lua $(HTTP_CDEF) \
	  $(DESTDIR)$(LUADIR)/async/server/
	install -m 0644 lua/async/transport/http_parser.lua lua/async/transport/luv.lua \
	  $(DESTDIR)$(LUADIR)/async/transport/
	install -m 0755 $(HTTP_LIB) $(DESTDIR)$(LIBDIR)/async_http.so

uninstall: uninstall-http
uninstall-http:
	rm -f $(DESTDIR)$(LIBDIR)/async_http.so

# libFuzzer: random and mutated request streams in random splits
# (src/http/test/fuzz_http.c); FUZZ_HTTP_SECONDS=n sets the run time.
$(BUILD)/fuzz/fuzz_http: src/http/test/fuzz_http.c $(HTEST_SRC) $(HTEST_HDR) $(HTTP_SRC) $(HTTP_HDR)
	@mkdir -p $(dir $@)
	clang -std=c11 -Wall -Wextra -Werror -O1 -g -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Isrc/http -o $@ src/http/test/fuzz_http.c \
	  src/http/test/transcript.c $(HTTP_SRC) $(HTTP_LIBS)

fuzz-http: $(BUILD)/fuzz/fuzz_http
	@mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_http -max_total_time=$(FUZZ_HTTP_SECONDS) -max_len=4096 -dict=src/http/test/http.dict \
	  $(BUILD)/fuzz/corpus src/http/test/corpus

test: deps all
	@tools/run-tests.sh

check: test

lint:
	luacheck -q lua spec bench examples

# Memory safety. sanitize-c: the C tests of the core and the HTTP shim under
# ASan+UBSan (what .ci/run always runs). sanitize: that, then every spec
# against sanitized builds: the specs that load the C libraries through the
# FFI under LuaJIT with ASan preloaded, and the specs tagged `loop` under an
# asyncrt built with the sanitizers (the core and the shim linked in).
# Specs that start other programs (asyncrt_cli_spec, ngx_spec, serve_main_spec)
# run in make test only (an uninstrumented asyncrt with the ASan runtime
# preloaded through the inherited LD_PRELOAD never answered serve_main_spec's
# first request, so the stage hung until its time limit); the leak spec runs
# 20,000 requests here instead of 100,000.
SAN_PRELOAD = ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)"

sanitize-c: $(CDEF) $(HTTP_CDEF)
	@mkdir -p $(BUILD)/san
	$(CC) $(WARN) $(SAN_FLAGS) $(CTEST_DEF) -o $(BUILD)/san/test_core $(CTEST_SRC) $(CORE_SRC)
	$(BUILD)/san/test_core
	$(CC) $(WARN) $(SAN_FLAGS) -Isrc/http -o $(BUILD)/san/test_http $(HTEST_SRC) $(HTTP_SRC) $(HTTP_LIBS)
	$(BUILD)/san/test_http

sanitize: sanitize-c $(BUILD)/rt/boot.h
	$(CC) $(WARN) $(SAN_FLAGS) -fPIC -shared -o $(BUILD)/san/async_core.so $(CORE_SRC)
	$(CC) $(WARN) $(SAN_FLAGS) -fPIC -shared -o $(BUILD)/san/async_http.so $(HTTP_SRC) $(HTTP_LIBS)
	$(CC) $(WARN) $(SAN_FLAGS) $(RT_INC) -DASYNCRT_LUV_VERSION='"$(LUV_VERSION)"' -Wl,-E \
	  -o $(BUILD)/san/asyncrt $(RT_SRC) $(BIND_SRC) $(CORE_SRC) $(HTTP_SRC) $(RT_LIBS) $(HTTP_LIBS)
	$(SAN_PRELOAD) LEAK_REQUESTS=20000 \
	  ASYNC_CORE_LIB=$(CURDIR)/$(BUILD)/san/async_core.so ASYNC_HTTP_LIB=$(CURDIR)/$(BUILD)/san/async_http.so \
	  busted --lua=luajit -o utfTerminal --exclude-tags=loop \
	  --exclude-pattern=asyncrt_cli_spec --exclude-pattern=ngx_spec --exclude-pattern=ngx_http_suite_spec \
	  --exclude-pattern=layering_spec --exclude-pattern=server_install_spec --exclude-pattern=serve_main_spec spec
	ASAN_OPTIONS=detect_leaks=0 busted --lua=$(BUILD)/san/asyncrt -o utfTerminal --tags=loop spec

valgrind: $(BUILD)/test_core $(CDEF)
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all $(BUILD)/test_core

bench: all
	@tools/deps.sh bench || true
	@echo "== kernel: js-reactivity-benchmark shapes vs alien-signals and preact (docs/performance.md)"
	$(LUAENV) luajit bench/run.lua
	@echo "== the LuaJIT limit behind the kernel's slow processes: a pcall target called from the interpreter (docs/performance.md)"
	$(LUAENV) luajit bench/luajit/pcall_target.lua
	@echo "== templates vs hand-written concatenation and lua-cosmo"
	$(LUAENV) luajit bench/template.lua
	@echo "== router: 1,000 routes"
	$(LUAENV) luajit bench/router.lua
	@echo "== runtime lifecycle: create_app + destroy per request, 10/100/1,000 routes"
	$(LUAENV) luajit bench/lifecycle.lua
	@echo "== scanner: Lua patterns vs LPeg"
	$(LUAENV) luajit bench/scanner.lua
	@echo "== SSR pages vs hand-written concatenation and lua-cosmo"
	$(LUAENV) luajit bench/render.lua --processes=5 0.3
	@echo "== streaming: time to first byte (luv loop)"
	build/asyncrt bench/ttfb.lua
	@echo "== asyncrt startup vs luajit and node"
	$(LUAENV) luajit bench/startup.lua
	@echo "== 100,000 concurrent Async.delay coroutines"
	build/asyncrt bench/timers.lua
	@echo "== HTTP serving: asyncrt page and handler POST vs nginx static and node (wrk)"
	bench/http.sh
	@echo "== OpenResty: the counter page under nginx (async.ngx, 2 workers) vs asyncrt and ngx.print (wrk)"
	bench/ngx.sh

FUZZ_DRIVERS := chain router html json paths kernel_model

fuzz: all
	@FUZZ_LONG=1 luajit spec/fuzz/run.lua
	@for d in $(FUZZ_DRIVERS); do FUZZ_LONG=1 luajit spec/fuzz/$$d.lua || exit 1; done

# make run: the examples' gallery (examples/gallery.lua) served by asyncrt on
# HOST:PORT (from the environment, default 127.0.0.1:8080) until Ctrl-C.
# Serving needs only the core packages (no node, no browser).
HOST ?= 127.0.0.1
PORT ?= 8080
run:
	@tools/deps.sh core
	@$(MAKE) --no-print-directory all
	@echo "== the examples' gallery: open http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	@HOST=$(HOST) PORT=$(PORT) $(BUILD)/asyncrt examples/gallery.lua

# The LuaJIT change docs/performance.md proposes ("the LuaJIT limit behind the slow mode"),
# measured: Debian's luajit2 source with tools/luajit/pcall-return.patch,
# built into build/luajit-patched/ (fetched from deb.debian.org, checked
# against the source package's sha256), then the reproduction on both
# LuaJITs and the kernel table (with its peers) on the patched one.
# Debian's Lua modules (cjson, luv) are added to the patched build's paths.
PATCHED_PATHS := LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;$(CURDIR)/$(BUILD)/luajit-patched/?.lua;;;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua" \
                 LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;;/usr/lib/$(shell gcc -print-multiarch)/lua/5.1/?.so"
# ... and the patched libluajit-5.1.so.2 for what links it (asyncrt, nginx)
PATCHED_ENV := LD_LIBRARY_PATH=$(CURDIR)/$(BUILD)/luajit-patched/lib $(PATCHED_PATHS)
bench-luajit-patch: all
	@tools/deps.sh bench || true
	tools/luajit-patched.sh
	@echo "== the reproduction under asyncrt on Debian's libluajit, then on the patched one (LD_LIBRARY_PATH)"
	$(LUAENV) $(BUILD)/asyncrt bench/luajit/pcall_target.lua
	$(PATCHED_ENV) $(BUILD)/asyncrt bench/luajit/pcall_target.lua
	@echo "== the reproduction on Debian's luajit, then on the patched build"
	$(LUAENV) luajit bench/luajit/pcall_target.lua
	$(PATCHED_PATHS) $(BUILD)/luajit-patched/luajit bench/luajit/pcall_target.lua
	@echo "== the kernel table on the patched build (make bench runs it on Debian's luajit)"
	$(PATCHED_PATHS) $(BUILD)/luajit-patched/luajit bench/run.lua

# The specs on the patched LuaJIT: busted on its luajit binary (Debian's
# luajit is linked statically), with LD_LIBRARY_PATH so the asyncrt and nginx
# the specs start load the patched libluajit-5.1.so.2; then the loop specs
# under asyncrt on it.
test-luajit-patch: all
	tools/luajit-patched.sh
	$(PATCHED_ENV) \
	  busted --lua=$(CURDIR)/$(BUILD)/luajit-patched/luajit --exclude-tags=loop spec
	$(PATCHED_ENV) busted --lua=$(CURDIR)/$(BUILD)/asyncrt --tags=loop spec

dev-env:
	@echo 'export LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;"'

install: all
	install -d $(DESTDIR)$(LIBDIR)
	@for f in $(LUA_SRC); do \
	  d=$(DESTDIR)$(LUADIR)/$$(dirname $${f#lua/}); install -d $$d && install -m 0644 $$f $$d/ || exit 1; \
	done
	install -m 0644 client/async.js $(DESTDIR)$(LUADIR)/async/server/client.js
	install -m 0755 $(CORE_LIB) $(DESTDIR)$(LIBDIR)/async_core.so
	install -m 0755 $(BIND_LIB) $(DESTDIR)$(LIBDIR)/async_bind.so
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BUILD)/asyncrt $(DESTDIR)$(BINDIR)/asyncrt

uninstall:
	rm -rf $(DESTDIR)$(LUADIR)/async $(DESTDIR)$(LIBDIR)/async_core.so $(DESTDIR)$(LIBDIR)/async_bind.so \
	  $(DESTDIR)$(BINDIR)/asyncrt

clean:
	rm -rf $(BUILD) $(CDEF)
