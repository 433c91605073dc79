# runnel - one entry point for building, running and testing.
#
#   make            build build/runnel (the broker)
#   make run        build and run one broker: data under ./data, clients on :9092
#   make test       install what is missing, build, run every test
#   make asan       the broker and unit tests with AddressSanitizer + UBSan
#   make gen        regenerate protocol/gen/ from the Kafka message schemas
#   make compat     every compat scenario against runnel and Apache Kafka 4.4, tshark-checked, what
#                   the clients saw compared between the two, matrix
#   make crash-test SIGKILL during acks=all produce, CRASH_ROUNDS rounds (100)
#
# Sources are found by wildcard: a new .c file in a layer directory is part of
# the build; a file named test_*.c is a Criterion test program of its own,
# except test_util.c, the helpers a layer's tests share, linked into each.

SHELL   := /bin/bash
CC      ?= cc
PYTHON  ?= python3
BUILD   ?= build
SCHEMAS ?= ../shared/kafka-protocol

CFLAGS_COMMON = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
                -Wstrict-prototypes -Wmissing-prototypes -D_GNU_SOURCE -g -MMD -MP -I.
CFLAGS  ?= -O2
LIBS    = -luring -lsnappy -llz4 -lzstd -lz -lpthread -lm
TESTLIBS = -lcriterion

LAYERS   = base protocol protocol/gen log coordinator server
ALL_SRC  = $(foreach d,$(LAYERS),$(wildcard $(d)/*.c))
TESTUTIL_SRC = $(foreach d,$(LAYERS),$(wildcard $(d)/test_util.c))
TEST_SRC = $(filter-out $(TESTUTIL_SRC),$(foreach d,$(LAYERS),$(wildcard $(d)/test_*.c)))
FILL_SRC = $(filter protocol/gen/fill_%.c,$(ALL_SRC))
MAIN_SRC = server/main.c
LIB_SRC  = $(filter-out $(TEST_SRC) $(TESTUTIL_SRC) $(FILL_SRC) $(MAIN_SRC),$(ALL_SRC))

.PHONY: bench bench-smoke all run test unit asan asan-unit integration crash-test gen deps deps-build deps-compat \
        reference compat clean

all: $(BUILD)/runnel

# ---- variants: release objects under build/obj and tests under build/tests;
# sanitizer objects under build/asan/obj and tests under build/asan/tests
define variant
$(1)_OBJ  = $$(patsubst %.c,$(2)/%.o,$$(LIB_SRC))
$(1)_FILL = $$(patsubst %.c,$(2)/%.o,$$(FILL_SRC))
$(1)_TESTS = $$(patsubst %.c,$(4)/%,$$(TEST_SRC))
$(1)_TESTUTIL = $$(patsubst %.c,$(2)/%.o,$$(TESTUTIL_SRC))

$(2)/%.o: %.c
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$@"
	@$$(CC) $$(CFLAGS_COMMON) $(3) -c $$< -o $$@

$(4)/%: $(2)/%.o $$($(1)_TESTUTIL) $$($(1)_OBJ) $$($(1)_FILL)
	@mkdir -p $$(dir $$@)
	@echo "  LINK    $$@"
	@$$(CC) $(3) $$^ -o $$@ $$(LIBS) $$(TESTLIBS)

-include $$(patsubst %.c,$(2)/%.d,$$(ALL_SRC))
endef

SAN = -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
$(eval $(call variant,REL,$(BUILD)/obj,$(CFLAGS),$(BUILD)/tests))
$(eval $(call variant,SAN,$(BUILD)/asan/obj,$(SAN),$(BUILD)/asan/tests))

$(BUILD)/runnel: $(BUILD)/obj/server/main.o $(REL_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $^ -o $@ $(LIBS)

$(BUILD)/asan/runnel: $(BUILD)/asan/obj/server/main.o $(SAN_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(SAN) $^ -o $@ $(LIBS)

asan: $(BUILD)/asan/runnel $(SAN_TESTS)

# Micro-benchmarks (tools/bench_*.c) print figures; they are not tests.
BENCH_SRC = $(wildcard tools/bench_*.c)
# The load tools of tools/bench.py take arguments and are not run alone:
# the librdkafka driver, librdkafka's mock cluster, the machine's limits.
BENCH_TOOLS = $(BUILD)/bench_rdkafka $(BUILD)/bench_mock $(BUILD)/bench_limits
BENCHES   = $(filter-out $(BENCH_TOOLS),$(patsubst tools/%.c,$(BUILD)/%,$(BENCH_SRC)))
$(BUILD)/bench_%: $(BUILD)/obj/tools/bench_%.o $(REL_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $^ -o $@ $(LIBS)
$(BENCH_TOOLS): $(BUILD)/%: $(BUILD)/obj/tools/%.o
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $^ -o $@ -lrdkafka -lpthread

# make bench: the micro-benchmarks, then runnel beside Apache Kafka 4.4 and
# librdkafka's mock cluster (tools/bench.py; build/bench.md, build/bench.json).
# BENCH_SCALE=0.1 shrinks every count and duration; BENCH_BROKERS picks brokers.
# make bench-smoke: runnel and the mock only, tiny, under a minute.
bench: deps-compat $(BENCHES) $(BENCH_TOOLS) $(BUILD)/runnel
	@set -e; for b in $(BENCHES); do echo "== $$b"; $$b; done
	/usr/bin/python3 tools/bench.py

bench-smoke: deps $(BENCH_TOOLS) $(BUILD)/runnel
	BENCH_SCALE=$${BENCH_SCALE:-0.01} BENCH_BROKERS=runnel,mock BENCH_OUT=$(BUILD)/bench-smoke \
		/usr/bin/python3 tools/bench.py

run: deps-build
	@$(MAKE) --no-print-directory $(BUILD)/runnel
	$(BUILD)/runnel config/server.properties

deps-build:
	@bash tools/deps.sh build

deps:
	@bash tools/deps.sh test

deps-compat:
	@bash tools/deps.sh compat

# The same integration scenarios against Apache Kafka 4.4, to check that
# what the suite expects is what Kafka does.
reference: deps-compat
	RUNNEL=compat-tests/kafka/reference-broker RUNNEL_STARTUP_TIMEOUT_S=60 /usr/bin/python3 compat-tests/run.py

# Everything the compat suite has: every scenario against runnel under a
# loopback capture decoded by tshark's Kafka dissector, the same against
# Apache Kafka 4.4, and the client x scenario matrix of both in
# build/compat-matrix.md, where a scenario whose observations differ
# between the two brokers fails its cells (compat-tests/compare.py). Long (tens of minutes); not part of make test.
compat: $(BUILD)/runnel deps-compat
	@rc=0; \
	RUNNEL=$(BUILD)/runnel /usr/bin/python3 compat-tests/conformance.py $(BUILD)/compat-runnel.json \
		$(BUILD)/compat-runnel.pcapng -- || rc=1; \
	RUNNEL=compat-tests/kafka/reference-broker RUNNEL_STARTUP_TIMEOUT_S=60 /usr/bin/python3 \
		compat-tests/conformance.py $(BUILD)/compat-kafka.json $(BUILD)/compat-kafka.pcapng -- || rc=1; \
	rm -f $(BUILD)/compat-runnel.pcapng $(BUILD)/compat-kafka.pcapng; \
	/usr/bin/python3 compat-tests/matrix.py $(BUILD)/compat-runnel.json $(BUILD)/compat-kafka.json \
		> $(BUILD)/compat-matrix.md || rc=1; \
	cat $(BUILD)/compat-matrix.md; exit $$rc

# Unit tests: every test_*.c, plain and under the sanitizers.
unit: $(REL_TESTS)
	@set -e; for t in $(REL_TESTS); do echo "== $$t"; $$t --jobs 2; done

# Criterion's workers do not fail a test on a LeakSanitizer report, so the
# output is searched for sanitizer reports too.
asan-unit: $(SAN_TESTS)
	@set -e; for t in $(SAN_TESTS); do echo "== $$t"; \
		ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp $$t --jobs 2 2>&1 | tee $(BUILD)/asan/last-test.log; \
		test $${PIPESTATUS[0]} -eq 0; \
		! grep -q 'LeakSanitizer\|AddressSanitizer\|runtime error:' $(BUILD)/asan/last-test.log; done

# Integration: the real broker on 127.0.0.1 driven by real clients.
integration: $(BUILD)/runnel $(BUILD)/asan/runnel
	RUNNEL=$(BUILD)/runnel /usr/bin/python3 compat-tests/run.py --results $(BUILD)/integration.json
	/usr/bin/python3 compat-tests/matrix.py $(BUILD)/integration.json
	RUNNEL=$(BUILD)/asan/runnel /usr/bin/python3 compat-tests/run.py

# Crash tests, longer than the 20 rounds integration runs: the broker is
# SIGKILLed during acks=all produce (plain and idempotent producers by
# turns), restarted and checked, CRASH_ROUNDS times, each round printed;
# then the full-disk story. CRASH_BROKER=$(BUILD)/asan/runnel for the
# sanitizers; RUNNEL_CRASH_SEED=N replays a run's kill points.
CRASH_ROUNDS ?= 100
CRASH_BROKER ?= $(BUILD)/runnel
crash-test: deps $(CRASH_BROKER)
	RUNNEL=$(CRASH_BROKER) RUNNEL_CRASH_ROUNDS=$(CRASH_ROUNDS) RUNNEL_CRASH_VERBOSE=1 \
		/usr/bin/python3 compat-tests/run.py crash_recovery disk_full

test: deps
	$(MAKE) unit fuzz-smoke asan-unit integration

gen:
	$(PYTHON) protocol/gen.py $(SCHEMAS) protocol/gen

# ---- fuzzing: libFuzzer targets fuzz/<name>.c (fuzz/fuzz.h says what one
# is), built with clang under ASan + UBSan into build/fuzz/<name>, with the
# layers they reach (base, protocol, log/topic_config.c, server/config*.c,
# and a segment's files: log/segment.c, offset_index.c, time_index.c).
#   make fuzz [FUZZ_SECONDS=60]   each target for FUZZ_SECONDS (make -j runs
#                                 several at once); new inputs are kept in
#                                 build/fuzz/corpus/<name>, crashes in
#                                 build/fuzz/crashes/<name>/, output in
#                                 build/fuzz/logs/<name>.log
#   make fuzz-smoke               every input of fuzz/regressions/<name>/,
#                                 then a few seconds from fuzz/corpus/<name>
# A crash found becomes a file in fuzz/regressions/<name>/, replayed forever.
FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_SAN        = -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# clang warns about designated initializers that leave fields to zero, a
# C idiom gcc accepts and the tree uses.
FUZZ_CFLAGS     = $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Wno-missing-field-initializers
FUZZ_OPTS       = -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1
FUZZ_TARGETS    = $(filter-out gen_seeds,$(patsubst fuzz/%.c,%,$(wildcard fuzz/*.c)))
FUZZ_BINS       = $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_TARGETS))
FUZZ_LIB_SRC    = $(filter base/% protocol/%,$(LIB_SRC)) log/topic_config.c server/config.c server/config_keys.c \
                  server/config_properties.c log/segment.c log/offset_index.c log/time_index.c log/logdir.c log/uuid.c
FUZZ_LIB_OBJ    = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_FILL_OBJ   = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(FILL_SRC))
FUZZ_LIBS       = -lsnappy -llz4 -lzstd -lz -lpthread -lm

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-seeds

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $@"
	@$(FUZZ_CC) $(CFLAGS_COMMON) $(FUZZ_CFLAGS) -c $< -o $@

$(BUILD)/fuzz/librunnel.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/fuzz/%: $(BUILD)/fuzz/obj/fuzz/%.o $(BUILD)/fuzz/librunnel.a
	@echo "  LINK    $@"
	@$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(FUZZ_LIBS)

# Seeds for every API version and internal record, from the random fillers
# of the codec tests (build/fuzz/seeds/<name>/; not committed: regenerated).
$(BUILD)/fuzz/gen_seeds: $(BUILD)/fuzz/obj/fuzz/gen_seeds.o $(FUZZ_FILL_OBJ) $(BUILD)/fuzz/librunnel.a
	@echo "  LINK    $@"
	@$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $^ -o $@ $(FUZZ_LIBS)

fuzz-seeds: $(BUILD)/fuzz/gen_seeds
	@$(BUILD)/fuzz/gen_seeds $(BUILD)/fuzz/seeds

fuzz-build: $(FUZZ_BINS)

fuzz: $(patsubst %,fuzz-run-%,$(FUZZ_TARGETS))

fuzz-run-%: $(BUILD)/fuzz/% fuzz-seeds
	@mkdir -p $(BUILD)/fuzz/corpus/$* $(BUILD)/fuzz/crashes/$* $(BUILD)/fuzz/logs $(BUILD)/fuzz/seeds/$*
	@echo "== fuzz $* for $(FUZZ_SECONDS) s (log: $(BUILD)/fuzz/logs/$*.log)"
	@ASAN_OPTIONS=detect_leaks=1 $< $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(BUILD)/fuzz/crashes/$*/ $(BUILD)/fuzz/corpus/$* fuzz/corpus/$* \
		$(BUILD)/fuzz/seeds/$* >$(BUILD)/fuzz/logs/$*.log 2>&1 || \
		{ tail -n 60 $(BUILD)/fuzz/logs/$*.log; \
		  echo "fuzz $*: crash saved in $(BUILD)/fuzz/crashes/$*/; add it to fuzz/regressions/$*/"; exit 1; }
	@echo "   $*: $$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
		$(BUILD)/fuzz/logs/$*.log | sed 's/^stat:://; s/: */=/' | tr '\n' ' ')"

# CI: replays the regressions, then FUZZ_SMOKE_SECONDS of fuzzing per target
# from the committed corpus with a fixed seed. libFuzzer writes new inputs to
# the first directory it is given: here a scratch directory of this run's own
# (two make test at once must not share it), never fuzz/corpus/.
fuzz-smoke: $(FUZZ_BINS)
	@set -e; mkdir -p $(BUILD)/fuzz/logs; scratch=$$(mktemp -d $(BUILD)/fuzz/smoke.XXXXXX); \
	for t in $(FUZZ_TARGETS); do \
		regs=$$(ls fuzz/regressions/$$t/* 2>/dev/null || true); \
		echo "== fuzz-smoke $$t: $$(echo $$regs | wc -w) regressions, $(FUZZ_SMOKE_SECONDS) s"; \
		mkdir -p $$scratch/$$t; log=$$scratch/$$t.log; \
		{ if [ -n "$$regs" ]; then $(BUILD)/fuzz/$$t $(FUZZ_OPTS) $$regs; fi && \
		  $(BUILD)/fuzz/$$t $(FUZZ_OPTS) -seed=1 -max_total_time=$(FUZZ_SMOKE_SECONDS) \
			-artifact_prefix=$$scratch/ $$scratch/$$t fuzz/corpus/$$t; \
		} >$$log 2>&1 || { tail -n 60 $$log; cp $$log $(BUILD)/fuzz/logs/smoke-$$t.log; \
			echo "fuzz-smoke $$t failed (log: $(BUILD)/fuzz/logs/smoke-$$t.log, input in $$scratch/)"; exit 1; }; \
	done; rm -rf $$scratch

-include $(patsubst %.c,$(BUILD)/fuzz/obj/%.d,$(FUZZ_LIB_SRC) $(FILL_SRC) $(wildcard fuzz/*.c))

clean:
	rm -rf $(BUILD)
.SECONDARY:
