/*
 * Forwarding: blocks for buckets another writer owns are relayed to it over
 * one pooled connection per peer address (FORWARD_REQ / FORWARD_RESP), and
 * its answer comes back to the caller. A peer that cannot be reached or
 * does not answer in time gives FW_ERETRY_LATER: the producer retries, and
 * the owner's sequence table drops a block that did land.
 */
#ifndef CAL_FORWARD_H
#define CAL_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "proto/produce.pb-c.h"
#include "server.h"

/* result is the owner's answer (valid during the call), or NULL with err < 0. */
typedef void (*cal_forward_cb)(void *arg, const Fwpb__BlockResult *result, int err);

/*
 * Relays one block (copied here) to the writer at address. cb runs exactly
 * once, later, on the loop. 0 or a negative errno (then cb never runs).
 */
int cal_forward(cal_server_t *s, const char *address, const char *category, uint32_t bucket,
                int ack, const uint8_t *block, size_t len, cal_forward_cb cb, void *arg);

/* Fails everything under way with FW_ESHUTTING_DOWN and closes every peer connection. */
void cal_forward_close_all(cal_server_t *s);

#endif
