# The peer benchmark's producers (bench/peers/README.md): redis_xadd (hiredis)
# and nats_publish (the NATS C client), built into build/release/bench/.
#
# Included from the top Makefile, or alone from the repository root:
#   make -f bench/peers/peers.mk bench-peers-build
#
# Every name here starts with PEERS_ (or bench-peers-) so that it cannot
# clash with the including Makefile's.

# Including this file must not change which target a bare `make` builds;
# alone (the only makefile read), a bare make builds the producers.
PEERS_SAVED_GOAL := $(.DEFAULT_GOAL)
PEERS_ALONE := $(filter 1,$(words $(MAKEFILE_LIST)))

PEERS_CC := cc
PEERS_WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wno-missing-field-initializers
PEERS_CFLAGS := -std=c11 -D_GNU_SOURCE $(PEERS_WARN) -O2 -g -pthread
PEERS_OUT := build/release/bench
PEERS_BINS := $(PEERS_OUT)/redis_xadd $(PEERS_OUT)/nats_publish

.PHONY: bench-peers-build
bench-peers-build: $(PEERS_BINS)

# The makefile is a prerequisite so that a change of flags rebuilds.
PEERS_COMMON := bench/peers/peer_input.c bench/peers/peer_input.h bench/peers/peers.mk

$(PEERS_OUT)/redis_xadd: bench/peers/redis_xadd.c $(PEERS_COMMON)
	@mkdir -p $(@D)
	$(if $(filter @,$(Q)),@echo "  CCLD    $@")
	$(Q)$(PEERS_CC) $(PEERS_CFLAGS) -o $@ $< bench/peers/peer_input.c -lhiredis

$(PEERS_OUT)/nats_publish: bench/peers/nats_publish.c $(PEERS_COMMON)
	@mkdir -p $(@D)
	$(if $(filter @,$(Q)),@echo "  CCLD    $@")
	$(Q)$(PEERS_CC) $(PEERS_CFLAGS) -o $@ $< bench/peers/peer_input.c -lnats

.DEFAULT_GOAL := $(if $(PEERS_ALONE),bench-peers-build,$(PEERS_SAVED_GOAL))
