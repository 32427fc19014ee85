/* What every fwbench subcommand shares: the input file, latency samples, clocks. */
#include "fwbench.h"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fwb_input_open(fwb_input_t *in, const char *path)
{
    memset(in, 0, sizeof(*in));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) {
        int err = st.st_size == 0 ? -ENODATA : -errno;
        close(fd);
        return err;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return -errno;
    in->data = map;
    in->size = (size_t)st.st_size;

    size_t cap = 1024;
    in->offsets = malloc(cap * sizeof(*in->offsets));
    in->lengths = malloc(cap * sizeof(*in->lengths));
    if (in->offsets == NULL || in->lengths == NULL)
        goto nomem;
    for (size_t at = 0; at < in->size;) {
        const char *nl = memchr(in->data + at, '\n', in->size - at);
        size_t end = nl != NULL ? (size_t)(nl - in->data) : in->size;
        if (in->count == cap) {
            cap *= 2;
            size_t *o = realloc(in->offsets, cap * sizeof(*o));
            if (o == NULL)
                goto nomem;
            in->offsets = o;
            uint32_t *l = realloc(in->lengths, cap * sizeof(*l));
            if (l == NULL)
                goto nomem;
            in->lengths = l;
        }
        in->offsets[in->count] = at;
        in->lengths[in->count] = (uint32_t)(end - at);
        in->count++;
        at = end + 1;
    }
    return 0;
nomem:
    fwb_input_close(in);
    return -ENOMEM;
}

void fwb_input_close(fwb_input_t *in)
{
    if (in->data != NULL)
        munmap((void *)in->data, in->size);
    free(in->offsets);
    free(in->lengths);
    memset(in, 0, sizeof(*in));
}

int fwb_samples_add(fwb_samples_t *s, int64_t ns)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1u << 16;
        uint32_t *us = realloc(s->us, cap * sizeof(*us));
        if (us == NULL)
            return -ENOMEM;
        s->us = us;
        s->cap = cap;
    }
    int64_t us = ns < 0 ? 0 : ns / 1000;
    s->us[s->len++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void fwb_samples_sort(fwb_samples_t *s)
{
    if (s->len > 1)
        qsort(s->us, s->len, sizeof(*s->us), cmp_u32);
}

double fwb_samples_quantile_ms(const fwb_samples_t *s, double q)
{
    if (s->len == 0)
        return 0;
    double rank = ceil(q * (double)s->len);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    if (i >= s->len)
        i = s->len - 1;
    return s->us[i] / 1000.0;
}

int fwb_samples_write_cdf(const fwb_samples_t *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    fprintf(f, "# latency_ms share_at_or_below (%zu samples)\n", s->len);
    /* Points at every 1% up to 99%, then ever finer toward the tail, and the maximum. */
    for (int i = 1; i <= 99; i++)
        fprintf(f, "%.3f %.6f\n", fwb_samples_quantile_ms(s, i / 100.0), i / 100.0);
    static const double tail[] = {0.995, 0.999, 0.9995, 0.9999, 0.99999};
    for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++)
        fprintf(f, "%.3f %.6f\n", fwb_samples_quantile_ms(s, tail[i]), tail[i]);
    if (s->len > 0)
        fprintf(f, "%.3f 1.000000\n", s->us[s->len - 1] / 1000.0);
    return fclose(f) == 0 ? 0 : -errno;
}

void fwb_samples_free(fwb_samples_t *s)
{
    free(s->us);
    memset(s, 0, sizeof(*s));
}

int64_t fwb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double fwb_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int64_t fwb_parse_size(const char *text)
{
    uint64_t v;
    if (fw_parse_size(text, &v) < 0 || v > INT64_MAX)
        return -1;
    return (int64_t)v;
}

void fwb_log(const char *who, int level, const char *message)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "fwbench %s: %s: %s\n", who, names[level & 3], message);
}
