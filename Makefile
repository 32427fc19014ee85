# freeway: one non-recursive Makefile. Every output goes under build/<mode>/.
#
#   make            build the debug tree (build/debug)
#   make test       install missing packages, build, run every test
#   make asan       the same suite built with AddressSanitizer + UBSan
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60)
#   make format     clang-format every C file; make format-check fails on drift
#   make demo       set up and run what exists of the fabric (see README)
#   make install    build the release tree and install it (PREFIX, DESTDIR; see "install")
#   make clean
#
# V=1 prints full commands. MODE=release|debug|asan selects the tree for `all`.

MODE ?= debug
FUZZ_SECONDS ?= 60
V ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

CC_debug := cc
CC_release := cc
CC_asan := clang
CC := $(CC_$(MODE))

PKGS := libuv libprotobuf-c liblz4 libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# The ZooKeeper C client ships no pkg-config file; THREADED selects the
# multi-threaded API (engineering-notes §1.1).
ZK_CFLAGS := -DTHREADED
ZK_LIBS := -lzookeeper_mt

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wno-missing-field-initializers
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -pthread -fno-strict-aliasing
CFLAGS_debug := -Og -g
CFLAGS_release := -O2 -g -DNDEBUG
CFLAGS_asan := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=all
LDFLAGS_asan := -fsanitize=address,undefined

B := build/$(MODE)
GEN := build/gen
INCLUDES := -I. -I$(GEN) -Icommon -Iproto -Icalligraphus -Iclient -Itests/harness -Itests/fuzz
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS_$(MODE)) $(INCLUDES) $(PKG_CFLAGS) $(ZK_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := -pthread $(LDFLAGS_$(MODE)) $(LDFLAGS)
LIBS := $(PKG_LIBS) $(ZK_LIBS) -lm

# ---- sources ---------------------------------------------------------------

PROTO_SCHEMAS := $(wildcard proto/*.proto)
PROTO_GEN_C := $(patsubst proto/%.proto,$(GEN)/proto/%.pb-c.c,$(PROTO_SCHEMAS))
PROTO_GEN_H := $(PROTO_GEN_C:.c=.h)

COMMON_SRCS := $(wildcard common/*.c)
PROTO_SRCS := $(wildcard proto/*.c)
CAL_SRCS := $(filter-out calligraphus/main.c,$(wildcard calligraphus/*.c))
PTAIL_SRCS := $(filter-out ptail/main.c,$(wildcard ptail/*.c))
COPIER_SRCS := $(filter-out copier/main.c,$(wildcard copier/*.c))
CLIENT_SRCS := $(wildcard client/*.c)
HARNESS_SRCS := $(wildcard tests/harness/*.c)
UNIT_SRCS := $(wildcard tests/unit/*.c)
INTEG_SRCS := $(wildcard tests/integration/*.c)
# tests/chaos: the fault-injection run (test_chaos) and the processes it drives.
CHAOS_TEST_SRCS := $(wildcard tests/chaos/test_*.c)
CHAOS_TOOL_SRCS := $(wildcard tests/chaos/chaos_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

COMMON_OBJS := $(call obj,$(COMMON_SRCS))
PROTO_OBJS := $(call obj,$(PROTO_SRCS)) $(patsubst $(GEN)/%.c,$(B)/obj/gen/%.o,$(PROTO_GEN_C))
HARNESS_OBJS := $(call obj,$(HARNESS_SRCS))
CAL_OBJS := $(call obj,$(CAL_SRCS))
PTAIL_OBJS := $(call obj,$(PTAIL_SRCS))
COPIER_OBJS := $(call obj,$(COPIER_SRCS))
CLIENT_OBJS := $(call obj,$(CLIENT_SRCS))

LIB_COMMON := $(B)/lib/libfwcommon.a
LIB_PROTO := $(B)/lib/libfwproto.a
LIB_CAL := $(B)/lib/libcal.a
LIB_PTAIL := $(B)/lib/libptail.a
LIB_COPIER := $(B)/lib/libcopier.a
# libfreeway: what applications link (producer, later consumer).
LIB_CLIENT := $(B)/lib/libfreeway.a

UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
INTEG_BINS := $(patsubst tests/integration/%.c,$(B)/tests/%,$(INTEG_SRCS))
CHAOS_BINS := $(patsubst tests/chaos/%.c,$(B)/tests/%,$(CHAOS_TEST_SRCS))
TEST_BINS := $(UNIT_BINS) $(INTEG_BINS) $(CHAOS_BINS)

.PHONY: all test asan chaos fuzz fuzz-build fuzz-seeds bench demo demo-stop format format-check clean deps \
        install install-files uninstall
.DEFAULT_GOAL := all
# Keep intermediate objects (the fuzz build chains pattern rules).
.SECONDARY:

CLI_SRCS := $(wildcard client/cli/*.c)
CLI_OBJS := $(call obj,$(CLI_SRCS))
CLI_BIN := $(B)/bin/freeway

TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TOOL_SRCS)) \
             $(patsubst tests/chaos/%.c,$(B)/tools/%,$(CHAOS_TOOL_SRCS))

DAEMON_BINS := $(patsubst %/main.c,$(B)/bin/%,$(wildcard calligraphus/main.c ptail/main.c \
                 copier/main.c))

# Example applications: each one file, linked only with libfreeway, as an application would be.
EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLE_BINS := $(patsubst examples/%.c,$(B)/examples/%,$(EXAMPLE_SRCS))

# bench/fwbench: the benchmarks' load generator (bench/README.md), linked as an application
# is, plus the block builder for its lz4 yardstick.
FWBENCH_SRCS := $(wildcard bench/fwbench/*.c)
FWBENCH_BIN := $(B)/bench/fwbench

# libfreeway as installed: the client with the formats and the runtime it calls, in one
# archive (LIB_CLIENT alone needs libfwproto.a and libfwcommon.a beside it).
LIB_DIST := $(B)/lib/dist/libfreeway.a

all: $(LIB_COMMON) $(LIB_PROTO) $(LIB_CLIENT) $(LIB_DIST) $(CLI_BIN) $(DAEMON_BINS) $(TEST_BINS) \
	$(TOOL_BINS) $(EXAMPLE_BINS) $(FWBENCH_BIN)

# ---- rebuild when flags change ------------------------------------------------

# install-files and uninstall only copy and remove, and install builds through a sub-make
# with MODE=release: none of them may touch build/$(MODE) (under sudo it would end up root's).
SKIP_TREE := $(if $(MAKECMDGOALS),$(if $(filter-out install install-files uninstall, \
                                                   $(MAKECMDGOALS)),,1))

FLAGS_FILE := $(B)/flags.txt
FLAGS_NOW := $(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(LIBS)
ifeq ($(SKIP_TREE),)
$(shell mkdir -p $(B) && { [ -f $(FLAGS_FILE) ] && [ "$$(cat $(FLAGS_FILE))" = '$(FLAGS_NOW)' ] \
        || echo '$(FLAGS_NOW)' > $(FLAGS_FILE); })
endif

# ---- generated protobuf-c code (never committed) --------------------------------

$(GEN)/proto/%.pb-c.c $(GEN)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)/proto
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(GEN) $<

# Every object may include a generated header, so generate them first.
$(COMMON_OBJS) $(PROTO_OBJS) $(HARNESS_OBJS) $(CLI_OBJS) $(CAL_OBJS) $(CLIENT_OBJS) \
	$(PTAIL_OBJS) $(COPIER_OBJS) $(B)/obj/calligraphus/main.o $(B)/obj/ptail/main.o \
	$(B)/obj/copier/main.o $(call obj,$(FWBENCH_SRCS)): | $(PROTO_GEN_H)

# ---- objects, libraries, binaries ------------------------------------------------

$(B)/obj/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# Generated code is not ours to warn about beyond what protoc-c emits.
$(B)/obj/gen/%.o: $(GEN)/%.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(LIB_COMMON): $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_PROTO): $(PROTO_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_CAL): $(CAL_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_PTAIL): $(PTAIL_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_COPIER): $(COPIER_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/bin/copier: $(B)/obj/copier/main.o $(LIB_COPIER) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/bin/ptail: $(B)/obj/ptail/main.o $(LIB_PTAIL) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(LIB_CLIENT): $(CLIENT_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# `q` appends without replacing, so two objects of one name in different folders both stay.
$(LIB_DIST): $(CLIENT_OBJS) $(PROTO_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar qcs $@ $^

$(B)/bin/calligraphus: $(B)/obj/calligraphus/main.o $(LIB_CAL) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Tests link the daemons' libraries too, so a unit test can reach any module.
TEST_LIBS := $(LIB_CLIENT) $(LIB_CAL) $(LIB_PTAIL) $(LIB_COPIER) $(LIB_PROTO) $(LIB_COMMON)

# The audit's arithmetic lives in the command line's objects.
$(B)/tests/test_audit_judge: $(B)/obj/client/cli/audit_judge.o

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(HARNESS_OBJS) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: $(B)/obj/tests/integration/%.o $(HARNESS_OBJS) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: $(B)/obj/tests/chaos/%.o $(HARNESS_OBJS) $(TEST_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(CLI_BIN): $(CLI_OBJS) $(LIB_CLIENT) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/examples/%: $(B)/obj/examples/%.o $(LIB_CLIENT) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(FWBENCH_BIN): $(call obj,$(FWBENCH_SRCS)) $(LIB_CLIENT) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tools/%: $(B)/obj/tests/tools/%.o $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# scribe_stub: a stand-in Scribe server on calligraphus's Thrift codec, for checking clients.
$(B)/tools/scribe_stub: $(B)/obj/calligraphus/scribe_thrift.o

# The chaos run's producer and consumer: applications of libfreeway.
$(B)/tools/chaos_%: $(B)/obj/tests/chaos/chaos_%.o $(LIB_CLIENT) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

ifeq ($(SKIP_TREE),)
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
endif

# ---- tests ------------------------------------------------------------------------

deps:
	$(Q)scripts/install-deps

# The npm client test_webhdfs_server checks the WebHDFS stand-in with, from the
# lock file; the directory is the stamp (npm ci rewrites it, touch dates it).
WEBHDFS_NODE_MODULES := tests/webhdfs/node_modules
$(WEBHDFS_NODE_MODULES): tests/webhdfs/package.json tests/webhdfs/package-lock.json | deps
	$(Q)npm ci --prefix tests/webhdfs --no-audit --no-fund
	$(Q)touch $@

test: deps $(WEBHDFS_NODE_MODULES)
	$(Q)$(MAKE) --no-print-directory MODE=debug all
	$(Q)tests/run build/debug

asan: deps $(WEBHDFS_NODE_MODULES)
	$(Q)$(MAKE) --no-print-directory MODE=asan all
	$(Q)tests/run build/asan

# The long chaos run (docs/chaos.md): FW_CHAOS_SECONDS of faults (30 min unless set), from
# FW_TEST_SEED if set. `make test` runs the same test for 2 minutes.
CHAOS_SECONDS ?= $(or $(FW_CHAOS_SECONDS),1800)
chaos: deps
	$(Q)$(MAKE) --no-print-directory MODE=debug all
	$(Q)FW_CHAOS_SECONDS=$(CHAOS_SECONDS) FW_TEST_TIMEOUT=$$(($(CHAOS_SECONDS) + 900)) \
		tests/run build/debug test_chaos/

# ---- fuzzing (clang + libFuzzer) ------------------------------------------------

FB := build/fuzz
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
               $(INCLUDES) $(PKG_CFLAGS) $(ZK_CFLAGS)
FUZZ_LIB_SRCS := $(COMMON_SRCS) $(PROTO_SRCS) $(PROTO_GEN_C)
FUZZ_LIB_OBJS := $(patsubst %.c,$(FB)/obj/%.o,$(FUZZ_LIB_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FB)/%,$(FUZZ_SRCS))
# fuzz_consumer also links libfreeway's files (the consumer's audit reports go through a producer).
FUZZ_CONSUMER_OBJS := $(patsubst %.c,$(FB)/obj/%.o,$(wildcard client/*.c))

$(FB)/obj/%.o: %.c | $(PROTO_GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz)"
	$(Q)clang $(FUZZ_CFLAGS:-fsanitize=fuzzer,%=-fsanitize=fuzzer-no-link,%) \
		-Wno-missing-prototypes -MMD -MP -c $< -o $@

$(FB)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS) $(ZK_LIBS) -lm

$(FB)/fuzz_consumer: $(FUZZ_CONSUMER_OBJS)
# fuzz_audit_report links the audit's report codec (client/audit.c).
$(FB)/fuzz_audit_report: $(FB)/obj/client/audit.o
# fuzz_webhdfs_json links only the copier's JSON reader.
$(FB)/fuzz_webhdfs_json: $(FB)/obj/copier/webhdfs_json.o
# fuzz_scribe_thrift links only calligraphus's Thrift codec.
$(FB)/fuzz_scribe_thrift: $(FB)/obj/calligraphus/scribe_thrift.o

-include $(shell find $(FB)/obj -name '*.d' 2>/dev/null)

fuzz-build: deps
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)scripts/run-fuzz $(FB) $(FUZZ_SECONDS)

# Regenerates the committed seed corpora from freeway's own encoders.
$(B)/tools/seedgen: $(B)/obj/tests/fuzz/seedgen.o $(B)/obj/calligraphus/scribe_thrift.o \
		$(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Only the corpora seedgen writes are replaced; hand-made ones (fuzz_http, fuzz_pbtext)
# and regression inputs (regress-*) stay.
SEEDGEN_TARGETS := fuzz_block fuzz_frame fuzz_segment fuzz_checkpoint fuzz_consumer \
                   fuzz_metrics_text fuzz_scribe_thrift
fuzz-seeds: $(B)/tools/seedgen
	$(Q)for t in $(SEEDGEN_TARGETS); do mkdir -p tests/fuzz/corpus/$$t && \
		find tests/fuzz/corpus/$$t -type f ! -name 'regress-*' -delete; done
	$(Q)$(B)/tools/seedgen tests/fuzz/corpus

# ---- demo, bench ----------------------------------------------------------------

demo: deps
	$(Q)$(MAKE) --no-print-directory MODE=release build/release/bin/calligraphus \
		build/release/bin/ptail build/release/bin/copier build/release/bin/freeway
	$(Q)scripts/demo start

demo-stop:
	$(Q)scripts/demo stop

# The benchmark (bench/README.md): limits, ingest, latency, ptail, scale, peers
# and the copier's lag in one run; it installs what it needs (fio, iperf3,
# redis-server, nats-server, gnuplot) and builds the release binaries itself.
# bench-quick is the short subset (< 3 min). bench-ingest and bench-copier run
# one part alone, with its own detailed report.
.PHONY: bench-quick bench-ingest bench-ingest-quick bench-copier bench-copier-quick
bench:
	$(Q)bench/bench

bench-quick:
	$(Q)bench/bench --quick

bench-ingest:
	$(Q)bench/ingest

bench-ingest-quick:
	$(Q)bench/ingest --quick

bench-copier:
	$(Q)bench/copier-lag

bench-copier-quick:
	$(Q)bench/copier-lag --quick

# The peers' own clients (hiredis, the NATS C client), bench-only dependencies.
-include bench/peers/peers.mk

# ---- install ---------------------------------------------------------------------
#
#   make install [PREFIX=/usr/local] [DESTDIR=]  build the release tree, then install-files
#   make install-files BUILD=build/debug ...     install an already-built tree; builds nothing
#   make uninstall [PREFIX=...] [DESTDIR=]       remove what install-files put in place
#
# Programs go to BINDIR; libfreeway.a (LIB_DIST) and freeway.pc to LIBDIR; the public header
# and the one it includes to INCLUDEDIR/freeway/ (`#include <freeway.h>` with
# `pkg-config --cflags freeway`, or <freeway/freeway.h>); the systemd units to
# PREFIX/lib/systemd/system (systemd reads /usr/local/lib/systemd/system too), their paths
# rewritten for BINDIR, DOCDIR and SYSCONFDIR; docs to DOCDIR and the example configs to
# DOCDIR/examples: nothing is written under SYSCONFDIR (deploy/README.md).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/freeway
# Where the units look for their config files (freeway/<daemon>.conf); never written.
SYSCONFDIR ?= /etc
BUILD ?= build/release

INSTALL_PROGRAMS := calligraphus ptail copier freeway
INSTALL_HEADERS := client/freeway.h common/error.h
INSTALL_UNITS := $(wildcard deploy/systemd/*.service)
INSTALL_EXAMPLES := $(wildcard deploy/config/*.conf)
INSTALL_DOCS := README.md $(wildcard docs/*.md)
FW_VERSION_NOW := $(shell sed -n 's/^\#define FW_VERSION_STRING "\(.*\)"/\1/p' common/version.h)
# The units and freeway.pc name /usr/local and /etc; installed, they name where things went.
INSTALL_SED := sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/doc/freeway|$(DOCDIR)|g' \
               -e 's|/etc/freeway/|$(SYSCONFDIR)/freeway/|g' -e 's|@PREFIX@|$(PREFIX)|g' \
               -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
               -e 's|@VERSION@|$(FW_VERSION_NOW)|g'

install:
	$(Q)$(MAKE) --no-print-directory MODE=release $(addprefix build/release/bin/,$(INSTALL_PROGRAMS)) \
		build/release/lib/dist/libfreeway.a
	$(Q)$(MAKE) --no-print-directory install-files BUILD=build/release

install-files:
	$(Q)for f in $(addprefix $(BUILD)/bin/,$(INSTALL_PROGRAMS)) $(BUILD)/lib/dist/libfreeway.a; do \
		[ -f $$f ] || { echo "install-files: $$f is not built (make install builds it)" >&2; \
		exit 1; }; done
	$(Q)for p in $(INSTALL_PROGRAMS); do \
		install -D -m 755 $(BUILD)/bin/$$p $(DESTDIR)$(BINDIR)/$$p || exit 1; done
	$(Q)install -D -m 644 $(BUILD)/lib/dist/libfreeway.a $(DESTDIR)$(LIBDIR)/libfreeway.a
	$(Q)install -d $(DESTDIR)$(LIBDIR)/pkgconfig
	$(Q)$(INSTALL_SED) deploy/freeway.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/freeway.pc
	$(Q)chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/freeway.pc
	$(Q)for h in $(INSTALL_HEADERS); do \
		install -D -m 644 $$h $(DESTDIR)$(INCLUDEDIR)/freeway/$$(basename $$h) || exit 1; done
	$(Q)install -d $(DESTDIR)$(UNITDIR)
	$(Q)for u in $(INSTALL_UNITS); do \
		$(INSTALL_SED) $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; done
	$(Q)for c in $(INSTALL_EXAMPLES); do \
		install -D -m 644 $$c $(DESTDIR)$(DOCDIR)/examples/$$(basename $$c) || exit 1; done
	$(Q)for d in $(INSTALL_DOCS); do \
		install -D -m 644 $$d $(DESTDIR)$(DOCDIR)/$$(basename $$d) || exit 1; done
	$(Q)install -D -m 644 deploy/README.md $(DESTDIR)$(DOCDIR)/deploy.md
	@echo "installed under $(DESTDIR)$(PREFIX); example configs in $(DOCDIR)/examples"

uninstall:
	$(Q)rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_PROGRAMS)) \
		$(DESTDIR)$(LIBDIR)/libfreeway.a $(DESTDIR)$(LIBDIR)/pkgconfig/freeway.pc \
		$(addprefix $(DESTDIR)$(INCLUDEDIR)/freeway/,$(notdir $(INSTALL_HEADERS))) \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(INSTALL_UNITS))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(INSTALL_EXAMPLES))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INSTALL_DOCS)) deploy.md)
	$(Q)rmdir --ignore-fail-on-non-empty $(DESTDIR)$(INCLUDEDIR)/freeway \
		$(DESTDIR)$(DOCDIR)/examples 2>/dev/null; \
		rmdir --ignore-fail-on-non-empty $(DESTDIR)$(DOCDIR) 2>/dev/null; true

# ---- formatting -------------------------------------------------------------------

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	$(Q)clang-format -i $(FORMAT_FILES)

format-check:
	$(Q)clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build
