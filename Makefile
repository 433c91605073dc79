# runnel - one entry point for building, running and testing.
#
#   make            build build/runnel (the broker)
#   make run        build and run one broker: data under ./data, clients on :9092
#   make test       install what is missing, build, run every test
#   make asan       the broker and unit tests with AddressSanitizer + UBSan
#   make gen        regenerate protocol/gen/ from the Kafka message schemas
#
# Sources are found by wildcard: a new .c file in a layer directory is part of
# the build; a file named test_*.c is a Criterion test program of its own.

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
TEST_SRC = $(foreach d,$(LAYERS),$(wildcard $(d)/test_*.c))
FILL_SRC = $(filter protocol/gen/fill_%.c,$(ALL_SRC))
MAIN_SRC = server/main.c
LIB_SRC  = $(filter-out $(TEST_SRC) $(FILL_SRC) $(MAIN_SRC),$(ALL_SRC))

.PHONY: bench all run test unit asan asan-unit integration gen deps deps-build deps-compat reference clean

all: $(BUILD)/runnel

# ---- variants: release objects under build/obj and tests under build/tests;
# sanitizer objects under build/asan/obj and tests under build/asan/tests
define variant
$(1)_OBJ  = $$(patsubst %.c,$(2)/%.o,$$(LIB_SRC))
$(1)_FILL = $$(patsubst %.c,$(2)/%.o,$$(FILL_SRC))
$(1)_TESTS = $$(patsubst %.c,$(4)/%,$$(TEST_SRC))

$(2)/%.o: %.c
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$@"
	@$$(CC) $$(CFLAGS_COMMON) $(3) -c $$< -o $$@

$(4)/%: $(2)/%.o $$($(1)_OBJ) $$($(1)_FILL)
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
BENCHES   = $(patsubst tools/%.c,$(BUILD)/%,$(BENCH_SRC))
$(BUILD)/bench_%: $(BUILD)/obj/tools/bench_%.o $(REL_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $^ -o $@ $(LIBS)

bench: $(BENCHES)
	@set -e; for b in $(BENCHES); do echo "== $$b"; $$b; done

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
	RUNNEL=$(BUILD)/runnel /usr/bin/python3 compat-tests/run.py
	RUNNEL=$(BUILD)/asan/runnel /usr/bin/python3 compat-tests/run.py

test: deps
	$(MAKE) unit asan-unit integration

gen:
	$(PYTHON) protocol/gen.py $(SCHEMAS) protocol/gen

clean:
	rm -rf $(BUILD)
.SECONDARY:
