/*
 * freeway audit: the model shared by its files.
 *
 *   audit.c        the command: options, where the data is (ZooKeeper), printing
 *   audit_scan.c   reading stored segments (block headers) and the audit reports
 *   audit_judge.c  the arithmetic: counts by bucket and minute, consumers' stretches
 *
 * Everything counts records by (bucket, minute of the block's base_ts), the
 * unit producers and consumers report in (client/audit.h).
 */
#ifndef FW_CLI_AUDIT_MODEL_H
#define FW_CLI_AUDIT_MODEL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "audit.h"

/* Room for one more element in *arr (n used of *cap, elem bytes each). 0 or -ENOMEM. */
static inline int fw_audit_room(void **arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *m = realloc(*arr, c * elem);
    if (m == NULL)
        return -ENOMEM;
    *arr = m;
    *cap = c;
    return 0;
}

/* A stored block, as its header says. */
typedef struct fw_ablock_s {
    uint64_t segment_id, offset;
    uint64_t producer_id, sequence;
    int64_t minute;
    uint32_t records;
} fw_ablock_t;

/* One bucket's blocks in position order. */
typedef struct fw_abucket_s {
    fw_ablock_t *blocks;
    size_t n, cap;
} fw_abucket_t;

/* A place the category's segments are stored: the writers' root or a copy. */
typedef struct fw_astore_s {
    char label[1100]; /* the root path or the copy's URL */
    char path[1024];  /* the directory read; "" when not readable from here */
    fw_abucket_t *buckets;
    uint32_t nbuckets;
    int found; /* the category's directory is there */
    uint64_t segments, blocks;
    uint64_t damaged; /* segments with a damaged block (counting stopped there) */
    char first_damage[1400];
    /* copies not readable from here (webhdfs): counted by the copier's progress alone */
    int by_progress;
    /*
     * The copier's recorded end of each bucket (nprogress entries; segment 0:
     * none), read from ZooKeeper when it is at hand: a readable copy must
     * hold at least that much.
     */
    uint64_t *progress_segment, *progress_offset;
    uint32_t nprogress;
} fw_astore_t;

/* One life of a consumer: its counts and stretches. */
typedef struct fw_alife_s {
    uint64_t life;
    int64_t first_sent_ms;
    uint64_t max_seq, reports;
    int final;
    fw_audit_table_t counts; /* tag 0 */
    fw_audit_range_t *ranges;
    size_t nranges, ranges_cap;
} fw_alife_t;

typedef struct fw_aconsumer_s {
    char name[256];
    fw_alife_t *lives;
    size_t nlives, lives_cap;
} fw_aconsumer_t;

/* The producers' lives, for the summary: reports seen, gaps, final. */
typedef struct fw_aplife_s {
    uint64_t life;
    uint64_t max_seq, reports;
    int final;
} fw_aplife_t;

typedef struct fw_audit_s {
    const char *category;
    int64_t since_min, until_min; /* minutes judged: [since, until) */
    int64_t settled_min;          /* producers' counts are complete before this minute */
    fw_astore_t written;
    fw_astore_t *copies;
    size_t ncopies;
    /* from the audit category */
    fw_audit_table_t produced; /* tag 0 */
    fw_aplife_t *plives;
    size_t nplives, plives_cap;
    uint64_t plives_unfinished; /* without a final report (fw_audit_read_reports counts) */
    uint64_t plives_silent;     /* producer ids in the written store with no report at all */
    /*
     * (0, bucket, minute): records written by producer ids whose life has no
     * final report or no report at all, the most of a cell's produced count
     * that may be missing for want of a report (fw_audit_count_silent fills it)
     */
    fw_audit_table_t unreported_max;
    fw_aconsumer_t *consumers;
    size_t nconsumers, consumers_cap;
    /* (life, hop, consumer) -> 1 + the index of the life in plives or its consumer's lives */
    fw_audit_table_t life_index;
    /* (life, hop, seq) of every report taken: one stored twice counts once */
    fw_audit_table_t seen;
    uint64_t reports, bad_reports, repeated_reports;
    uint64_t reports_damaged; /* audit segments damaged or unreadable (counted in bad_reports) */
    char first_bad_report[300];
} fw_audit_t;

/* ---- audit_scan.c ---- */

/*
 * Reads the segments ROOT/<category>/<bucket>/<id>.seg under s->path by block headers only,
 * keeping blocks whose minute is in [a->since_min, a->until_min). 0 or -errno
 * (the root missing or unreadable; a missing category directory is an empty
 * store, with s->found 0).
 */
int fw_audit_scan_store(const fw_audit_t *a, fw_astore_t *s);
/*
 * Reads every record of the audit category under root and keeps the
 * reports about a->category. 0 or -errno.
 */
int fw_audit_read_reports(fw_audit_t *a, const char *root, const char *audit_category);
/*
 * After both reads: a->plives_silent, the producer ids of written blocks
 * that no report names (lives killed before their first report, or that
 * never reported), and a->unreported_max, what those ids and the lives
 * without a final report wrote in each cell. 0 or -ENOMEM.
 */
int fw_audit_count_silent(fw_audit_t *a);
void fw_audit_free(fw_audit_t *a);

/* ---- audit_judge.c ---- */

/* The bucket's blocks (NULL if the store has none of it). */
const fw_abucket_t *fw_audit_bucket(const fw_astore_t *s, uint32_t bucket);

/* Sums per minute of the records of b whose positions lie in [first, last] into t (tag 0). */
int fw_audit_count_range(const fw_abucket_t *b, uint32_t bucket, const fw_audit_range_t *r,
                         fw_audit_table_t *t);

/* Records by (bucket, minute) of a whole store, into t (tag 0). */
int fw_audit_count_store(const fw_astore_t *s, fw_audit_table_t *t);

/*
 * A copy's expected counts: the records of the writers' root at or before the
 * copy's last block of each bucket, or before the copier's recorded progress
 * if that is further (a copy that lost its newest files, or all of a bucket,
 * is not merely behind), into t.
 */
int fw_audit_copy_expected(const fw_astore_t *written, const fw_astore_t *copy,
                           fw_audit_table_t *t);

/*
 * A consumer, summed over its lives: the records it counted (into own), the
 * stored records a later life read again after an earlier one (into again:
 * own - again is what it consumed, each record once), and what the stored
 * segments hold in every stretch it covered (into expected).
 */
int fw_audit_consumer(const fw_astore_t *written, const fw_aconsumer_t *c, fw_audit_table_t *own,
                      fw_audit_table_t *again, fw_audit_table_t *expected);

/* A (producer, sequence) stored twice in one bucket. */
typedef struct fw_adup_s {
    uint32_t bucket;
    int64_t minute;
    uint32_t records;
    uint64_t producer_id, sequence;
    uint64_t segment_id, offset; /* the second copy */
    uint64_t first_segment, first_offset;
} fw_adup_t;

/* Every repeated (producer, sequence) of the store; *out malloc'd. 0 or -ENOMEM. */
int fw_audit_duplicates(const fw_astore_t *s, fw_adup_t **out, size_t *n);

#endif
