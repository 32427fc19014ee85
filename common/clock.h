/* Clock readings every freeway process takes: monotonic for timeouts and leases, wall for stored
 * times. */
#ifndef FW_CLOCK_H
#define FW_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t fw_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t fw_clock_mono_ms(void)
{
    return fw_clock_mono_ns() / 1000000;
}

/* Milliseconds since the Unix epoch. */
static inline int64_t fw_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
