/* The token bucket (see rate.h). */
#include "rate.h"

#include <math.h>

void cp_rate_init(cp_rate_t *r, uint64_t bytes_per_s, int64_t now_ms)
{
    r->rate = (double)bytes_per_s / 1000.0;
    r->burst = r->rate * 100.0;
    if (r->burst < 4096)
        r->burst = 4096;
    r->tokens = r->burst;
    r->last_ms = now_ms;
}

static void refill(cp_rate_t *r, int64_t now_ms)
{
    if (now_ms > r->last_ms) {
        r->tokens += r->rate * (double)(now_ms - r->last_ms);
        if (r->tokens > r->burst)
            r->tokens = r->burst;
    }
    r->last_ms = now_ms;
}

uint64_t cp_rate_available(cp_rate_t *r, int64_t now_ms)
{
    if (r->rate <= 0)
        return UINT64_MAX;
    refill(r, now_ms);
    return r->tokens >= 1.0 ? (uint64_t)r->tokens : 0;
}

void cp_rate_take(cp_rate_t *r, uint64_t bytes)
{
    if (r->rate > 0)
        r->tokens -= (double)bytes;
}

int64_t cp_rate_wait_ms(cp_rate_t *r, int64_t now_ms)
{
    if (r->rate <= 0)
        return 0;
    refill(r, now_ms);
    if (r->tokens >= 1.0)
        return 0;
    return (int64_t)ceil((1.0 - r->tokens) / r->rate);
}
