/*
 * cal_scribe: Scribe's interface on calligraphus (--scribe-listen;
 * docs/scribe.md), so that an application logging through Scribe moves to
 * freeway unchanged. Its connections are cal_conns speaking
 * cal_scribe_proto (the codec is scribe_thrift.c).
 *
 * A Log call's messages become records of their categories. With the
 * category's scribe_key_delimiter set, a message's key is the text before
 * the first delimiter and places it like a producer's keyed record; without
 * it, a call's messages of one category go to one bucket, one this writer
 * owns when it owns any (no forwarding hop). Each bucket's messages are
 * built into blocks under the connection's producer id for the bucket and
 * sent through cal_submit at the durable ack level. The call is answered
 * OK when every block is stored, TRY_LATER when any is not (backpressure,
 * no owner, a category not known yet), and nothing is stored twice when
 * it comes again (scribe_retry.h). A message that can never be stored (an
 * invalid category name, a message over the category's record limit) gets
 * the call a TApplicationException naming it, and nothing of the call is
 * stored.
 *
 * fb303's calls answer what a control tool asks: getStatus (ALIVE, or
 * STOPPING while draining), getName, getVersion, aliveSince, getCounters
 * and getCounter (this listener's counts); options are empty and
 * shutdown/reinitialize are logged and ignored (SIGTERM stops a writer).
 */
#ifndef CAL_SCRIBE_H
#define CAL_SCRIBE_H

#include <stdint.h>

#include <uv.h>

#include "conn.h"
#include "scribe_retry.h"
#include "server.h"

typedef struct cal_scribe_config_s {
    const char *listen;            /* ADDR:PORT */
    int create_unknown;            /* 0: an unknown category is TRY_LATER; 1: created */
    uint32_t new_category_buckets; /* buckets of a category created for Scribe */
    int64_t retry_window_ms;       /* how long a call that may come again is remembered */
    uint32_t retry_max;            /* calls remembered at most */
    uint32_t max_frame;            /* largest Thrift frame; a larger one closes its connection */
    int64_t
        resubmit_ms; /* how long a call's blocks that failed for a passing reason are sent again */
} cal_scribe_config_t;

typedef struct cal_scribe_s cal_scribe_t;

/*
 * Listens on cfg->listen through srv (which must outlive it); bound (cap
 * bytes) then says where. 0 or a negative errno. cal_server_drain and
 * cal_server_close stop it with the rest; cal_scribe_close frees it after.
 */
int cal_scribe_start(cal_scribe_t **out, cal_server_t *srv, const cal_scribe_config_t *cfg,
                     char *bound, size_t cap);

/* Stops its timer (cb once closed); calls still running are answered by then. */
void cal_scribe_close(cal_scribe_t *sc, void (*cb)(void *arg), void *arg);

/* Frees it once closed. NULL is fine. */
void cal_scribe_free(cal_scribe_t *sc);

#endif
