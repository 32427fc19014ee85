/*
 * fwbench: the load generator and measuring consumer of bench/ (see
 * bench/README.md). One process per measurement, driven by bench/bench;
 * each subcommand prints its figures as one JSON object on stdout, so the
 * orchestrator never parses prose. Everything it talks to is on loopback.
 *
 *   fwbench produce   N threads sharing one producer: records/s, MB/s
 *   fwbench latency   paced sends and a consumer in one process: send -> callback
 *   fwbench consume   M consumers at once, each reading a category from the start
 *   fwbench lz4       lz4 on blocks built from the bench's own input
 */
#ifndef FWBENCH_H
#define FWBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "freeway.h"

/* The records of an input file: one per line, newlines stripped, mapped read-only. */
typedef struct fwb_input_s {
    const char *data;
    size_t size;
    size_t count;
    /* offsets[i] .. offsets[i] + lengths[i] is record i. */
    size_t *offsets;
    uint32_t *lengths;
} fwb_input_t;

int fwb_input_open(fwb_input_t *in, const char *path);
void fwb_input_close(fwb_input_t *in);

/* Latency samples in microseconds; quantiles after fwb_samples_sort. */
typedef struct fwb_samples_s {
    uint32_t *us;
    size_t len;
    size_t cap;
} fwb_samples_t;

int fwb_samples_add(fwb_samples_t *s, int64_t ns);
void fwb_samples_sort(fwb_samples_t *s);
/* The q-quantile (0..1) in milliseconds, nearest rank; 0 when empty. */
double fwb_samples_quantile_ms(const fwb_samples_t *s, double q);
/* Writes "latency_ms cumulative_share" lines at log-spaced points for gnuplot. */
int fwb_samples_write_cdf(const fwb_samples_t *s, const char *path);
void fwb_samples_free(fwb_samples_t *s);

int64_t fwb_now_ns(void);
/* CPU seconds (user + system) this process has used. */
double fwb_cpu_seconds(void);
/* A count or size, optionally with K, M or G (powers of 1024; fw_parse_size), or -1. */
int64_t fwb_parse_size(const char *text);

/* The subcommands: argc/argv start at the subcommand's own name. Exit statuses. */
int fwb_cmd_produce(int argc, char **argv);
int fwb_cmd_latency(int argc, char **argv);
int fwb_cmd_consume(int argc, char **argv);
int fwb_cmd_lz4(int argc, char **argv);

/*
 * The producer flags produce and latency share (getopt codes z a C b l B f):
 * 1 = handled, 0 = not one of them, -1 = a bad value.
 */
int fwb_producer_flag(fw_producer_options_t *o, int opt, const char *arg);

/* Prints a library log line on stderr, prefixed with the subcommand. */
void fwb_log(const char *who, int level, const char *message);

#endif
