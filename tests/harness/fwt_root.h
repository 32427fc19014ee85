/*
 * Reading back what writers stored, for end-to-end checks: every record of
 * a category under a root, bucket by bucket in segment and block order, and
 * a checker for the numbered lines the send tests produce.
 */
#ifndef FWT_ROOT_H
#define FWT_ROOT_H

#include <stdint.h>
#include <stdio.h>

#include "block.h"
#include "fwt_proc.h"

typedef void (*fwt_record_fn)(void *arg, uint32_t bucket, uint64_t segment_id,
                              const fw_block_header_t *h, const fw_record_t *rec);

/*
 * Calls fn for every record in ROOT/category/<bucket>/<segment>.seg, each
 * bucket's segments in id order. Fails the test on a damaged block. An open
 * segment is read up to its last whole block. Returns the record count.
 */
uint64_t fwt_root_records(const char *root, const char *category, fwt_record_fn fn, void *arg);

/* The bytes of every segment file under ROOT/<category>/<bucket>/, all categories. */
uint64_t fwt_root_segment_bytes(const char *root);

/*
 * Writes segment `id` of a bucket directory by hand, as a writer would:
 * `blocks` blocks of `per_block` records ("<id>:<block>:<record>", no key),
 * block b's records at ts0 + b, and a seal if asked. Returns the segment's
 * size. For readers' tests that need exact files without a writer.
 */
uint64_t fwt_segment_write(const char *dir, const char *category, uint64_t id, int blocks,
                           int per_block, int64_t ts0, int sealed);

/*
 * The numbered lines: line n is "k<key> <n, 9 digits> <filler>" with key
 * n % nkeys, so `freeway send --key-sep ' '` keys it by "k<key>".
 */
void fwt_lines_write(FILE *f, uint64_t first, uint64_t count, int nkeys);

typedef struct fwt_lines_report_s {
    uint64_t records;  /* records read */
    uint64_t missing;  /* lines of [0, n) not stored */
    uint64_t dups;     /* extra copies */
    uint64_t disorder; /* a line stored before an earlier line of its key */
    uint64_t foreign;  /* records that are not numbered lines */
    uint64_t first_missing, first_dup;
} fwt_lines_report_t;

/* What the .seg files under a directory tree hold (a root, a spool). */
typedef struct fwt_seg_tree_s {
    uint64_t files;
    uint64_t records;
    char most[FWT_PATH_MAX]; /* the file with the most blocks */
    uint64_t most_blocks;
} fwt_seg_tree_t;

/* Scans every .seg under dir (unreadable ones count as files only). */
void fwt_seg_tree(const char *dir, fwt_seg_tree_t *t);

/* fwt_wait_until condition: the .seg files under dir hold at least `records`. */
typedef struct fwt_seg_records_s {
    const char *dir;
    uint64_t records;
} fwt_seg_records_t;
int fwt_seg_records_reach(void *arg);

/* Checks that lines [0, n) are each stored exactly once, in order per key. */
void fwt_lines_check(const char *root, const char *category, uint64_t n, int nkeys,
                     fwt_lines_report_t *r);
/* fwt_lines_check, failing the test unless exactly lines [0, n) are stored, each once, in order. */
void fwt_lines_assert_once(const char *root, const char *category, uint64_t n, int nkeys);

#endif
