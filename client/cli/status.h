/*
 * `freeway status`: what the fabric looks like now, gathered from ZooKeeper
 * (live nodes, categories, bucket owners and epochs, copier progress) and
 * from every live node's own HTTP endpoint (/readyz, and /metrics for what
 * only the node knows: a bucket's open segment, the last minute's and
 * hour's traffic, copier and subscriber lag). status.c gathers it into a
 * fw_status_t; status_print.c prints it as a table or as JSON.
 */
#ifndef FW_CLI_STATUS_H
#define FW_CLI_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Text from ZooKeeper and from the nodes lands in fixed fields, cut to fit
 * at a character boundary (fw_utf8_prefix); the printers escape what a
 * terminal or JSON cannot take.
 */
typedef struct fw_status_node_s {
    char kind[16]; /* calligraphus, ptail, copier */
    char id[128];
    char address[128];
    char metrics[128]; /* "" when the node serves no metrics */
    char version[32];
    int64_t started_ms;
    /* from the node itself */
    int ready;        /* 1 ready, 0 not ready, -1 unknown (no metrics address, unreachable) */
    char reason[256]; /* why not ready, or why unknown */
    int metrics_read; /* its /metrics was read whole and taken into the picture */
} fw_status_node_t;

/* A copy of one bucket at one destination. */
typedef struct fw_status_copy_s {
    int dest;         /* index into fw_status_t.dests */
    int has_progress; /* a progress record exists in ZooKeeper */
    uint64_t segment_id, offset;
    int64_t updated_ms;
    char copier[128];              /* who holds the claim (from the copiers' metrics); "" if none */
    double lag_bytes, lag_seconds; /* -1: unknown */
} fw_status_copy_t;

typedef struct fw_status_bucket_s {
    uint32_t bucket;
    int has_meta;
    uint64_t epoch, next_segment_id;
    char owner[128];                  /* "" when nobody owns it */
    double segment_id, segment_bytes; /* the owner's open segment; -1: unknown */
    fw_status_copy_t *copies;         /* one per destination */
} fw_status_bucket_t;

typedef struct fw_status_category_s {
    char name[129];
    int has_config;
    uint32_t buckets;
    uint64_t roll_bytes, roll_age_ms, retention_ms;
    uint32_t sync_interval_ms, max_record_bytes;
    const char *codec;
    int scribe_key_delim; /* the byte 0..255, or -1: no key (absent or not one byte) */
    /* summed over the writers that answered; -1: no writer answered */
    double records_1m, bytes_1m, records_1h, bytes_1h;
    fw_status_bucket_t *list; /* buckets entries */
} fw_status_category_t;

/* One consumer's subscription at one ptail, summed over its buckets. */
typedef struct fw_status_sub_s {
    int node; /* the ptail: index into nodes */
    char consumer[128];
    char category[129];
    uint32_t buckets;
    double lag_bytes;   /* summed */
    double lag_seconds; /* the worst bucket's */
} fw_status_sub_t;

typedef struct fw_status_s {
    int64_t now_ms;
    char zk[512];
    fw_status_node_t *nodes;
    size_t nnodes;
    char **dests; /* destination URLs that have progress or copiers (each malloc'd) */
    size_t ndests;
    fw_status_category_t *cats;
    size_t ncats;
    fw_status_sub_t *subs;
    size_t nsubs;
} fw_status_t;

void fw_status_free(fw_status_t *st);

/* The whole picture as a table for people. */
void fw_status_print_table(const fw_status_t *st, FILE *out);

/* The same as one JSON object (one line), for scripts. */
void fw_status_print_json(const fw_status_t *st, FILE *out);

#endif
