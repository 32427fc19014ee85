/*
 * cp_rate: the copier's bandwidth limit (--rate), a token bucket over all
 * of its copying. Tokens are bytes; they refill continuously at the rate and
 * hold at most a tenth of a second's worth, so copying is smooth rather than
 * a burst at the top of every second. A taker may go into debt by one chunk
 * (a block larger than the bucket still gets through); everyone then waits
 * for the debt to be paid.
 */
#ifndef CP_RATE_H
#define CP_RATE_H

#include <stdint.h>

typedef struct cp_rate_s {
    double rate;  /* bytes per ms; 0 = unlimited */
    double burst; /* most tokens held */
    double tokens;
    int64_t last_ms;
} cp_rate_t;

/* bytes_per_s 0 means no limit. */
void cp_rate_init(cp_rate_t *r, uint64_t bytes_per_s, int64_t now_ms);
/* Bytes that may be copied now (UINT64_MAX without a limit; 0 while in debt). */
uint64_t cp_rate_available(cp_rate_t *r, int64_t now_ms);
/* Charges bytes copied (may leave the bucket in debt). */
void cp_rate_take(cp_rate_t *r, uint64_t bytes);
/* Milliseconds until some bytes are available again (0 if they are now). */
int64_t cp_rate_wait_ms(cp_rate_t *r, int64_t now_ms);

#endif
