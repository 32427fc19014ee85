/*
 * The producer's spool on local disk: blocks no writer could take yet, kept
 * per bucket in send order until a writer acks them (docs/spool.md).
 *
 *   DIR/@lock                         flock(2): one producer per spool ("@" is in
 *                                     no category name, so none collides)
 *   DIR/<category>/<bucket>/<id>.seg  that bucket's spooled blocks, oldest file first
 *   DIR/<category>/<bucket>/<id>.seg.resolved  offsets of its blocks already resolved,
 *                                     which a later producer does not send again
 *
 * A spool file is a freeway segment without a seal, so the segment code
 * checks it (CRCs), recovers it after a crash (a torn tail is cut) and
 * `freeway verify DIR` reads it. A bucket appends to one file at a time and
 * starts another at file_bytes; replay reads its files oldest first; a file
 * is deleted once it is read to the end, no longer appended to, and every
 * block read from it is resolved (acked, or failed for good).
 *
 * Storage only: it knows nothing of writers or callbacks. Blocking file I/O,
 * called on the producer's I/O thread alone (no locks). Functions return 0
 * or a negative errno / freeway code, and describe trouble through the log
 * callback given at open.
 */
#ifndef FW_CLIENT_SPOOL_H
#define FW_CLIENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "freeway.h"
#include "names.h"

#define FW_SPOOL_LOCK  "@lock"
#define FW_SPOOL_SHAPE "@shape"

typedef struct fw_spool_s fw_spool_t;
typedef struct fw_spool_bucket_s fw_spool_bucket_t;

typedef void (*fw_spool_log_cb)(fw_producer_log_level_t level, const char *message, void *arg);

typedef struct fw_spool_config_s {
    const char *dir;
    uint64_t max_bytes;     /* appends past this fail with -ENOSPC */
    fw_spool_sync_t sync;   /* when appended bytes are fdatasync'd */
    uint64_t file_bytes;    /* a bucket starts a new file past this (0: 4 MiB) */
    uint32_t max_open;      /* files open for appending at once (0: 256) */
    fw_spool_log_cb log_cb; /* may be NULL */
    void *log_arg;
} fw_spool_config_t;

/* Where a block read for replay came from: hand it back to fw_spool_resolved. */
typedef struct fw_spool_ref_s {
    uint64_t file_id;
    uint64_t offset; /* of the block in its file */
    uint32_t records;
} fw_spool_ref_t;

/* One block read back from the spool. */
typedef struct fw_spool_block_s {
    uint64_t producer_id;
    uint64_t sequence;
    uint32_t records;
    int64_t base_ts;
    fw_spool_ref_t ref;
} fw_spool_block_t;

/*
 * Opens (creating) the spool directory, takes its lock (FW_ESPOOL_LOCKED
 * when another producer holds it; err says which pid), and scans what
 * earlier producers left: every file is checked and a torn or damaged tail
 * is cut (logged with its size), a file too short for a header is removed,
 * one with a damaged header is left alone (logged). err receives a sentence
 * on failure.
 */
int fw_spool_open(const fw_spool_config_t *c, fw_spool_t **out, char *err, size_t errcap);

/* fdatasyncs what is not yet (unless sync is NEVER), closes the files, drops the LOCK. */
void fw_spool_close(fw_spool_t *s);

/* The bucket's spool, made (empty) when create is set; NULL if absent, or on -ENOMEM. */
fw_spool_bucket_t *fw_spool_bucket(fw_spool_t *s, const char *category, uint32_t bucket,
                                   int create);

/* Iterates the buckets that hold blocks (after open: what to replay). */
fw_spool_bucket_t *fw_spool_next_bucket(fw_spool_t *s, fw_spool_bucket_t *after);
const char *fw_spool_bucket_category(const fw_spool_bucket_t *b);
uint32_t fw_spool_bucket_id(const fw_spool_bucket_t *b);

/*
 * Appends one whole block of records records to the bucket's spool. With
 * sync ALWAYS the block is on stable storage when this returns 0; with
 * INTERVAL, once the next fw_spool_sync returns 0. -ENOSPC past max_bytes
 * (nothing written), FW_ESEG_FAILED after a failed fdatasync (the spool
 * takes nothing more: what it held may be gone), or -errno.
 */
int fw_spool_append(fw_spool_t *s, fw_spool_bucket_t *b, const uint8_t *block, size_t len,
                    uint32_t records);

/* fdatasyncs every file appended to since the last sync. 0 or as above. */
int fw_spool_sync(fw_spool_t *s);

/* 1 if appends since the last sync wait for one. */
int fw_spool_dirty(const fw_spool_t *s);

/*
 * Reads the bucket's next unread block into out (replacing its contents)
 * and fills *blk. 1: a block; 0: nothing unread; a negative code when
 * reading failed for now (descriptors, memory, I/O: nothing is lost, try
 * again later). A file whose bytes turn out damaged is given up from there
 * (logged, kept as <id>.seg.damaged) and replay goes on with the next file.
 */
int fw_spool_read(fw_spool_t *s, fw_spool_bucket_t *b, fw_buf_t *out, fw_spool_block_t *blk);

/* Closes the bucket's reader (it reopens where it was): a spool holds few descriptors. */
void fw_spool_read_pause(fw_spool_bucket_t *b);

/*
 * Writes a block's 64-byte header back over the one in its file (a block
 * read back and renumbered), so a later producer sends it with the sequence
 * a writer may already have stored it under. Synced with sync ALWAYS.
 */
int fw_spool_rewrite_header(fw_spool_t *s, fw_spool_bucket_t *b, const fw_spool_ref_t *ref,
                            const uint8_t *header);

/* 1 after a failed fdatasync: the spool takes nothing more. */
int fw_spool_failed(const fw_spool_t *s);

/* A block read from the bucket's spool is resolved: a writer acked it or refused it for good. */
void fw_spool_resolved(fw_spool_t *s, fw_spool_bucket_t *b, const fw_spool_ref_t *ref);

/* 1 if the bucket's spool holds no block, read or unread, that is not resolved. */
int fw_spool_bucket_empty(const fw_spool_bucket_t *b);

/*
 * What the producer last knew of a category's shape, kept in
 * DIR/<category>/@shape so that a producer restarted while no writer
 * answers can place records in buckets, and spool them, before any
 * metadata arrives.
 */
typedef struct fw_spool_shape_s {
    char category[FW_CATEGORY_MAX + 1];
    uint32_t buckets;
    uint32_t max_record;
    uint32_t codec;
} fw_spool_shape_t;

/* Saves a category's shape (write and rename). 0 or -errno. */
int fw_spool_save_shape(fw_spool_t *s, const fw_spool_shape_t *shape);

/* The shapes saved in the spool: *out is malloc'd (n entries). 0 or -errno. */
int fw_spool_shapes(fw_spool_t *s, fw_spool_shape_t **out, size_t *n);

/* What the spool holds now. */
typedef struct fw_spool_usage_s {
    uint64_t bytes;   /* of its files, headers included */
    uint64_t blocks;  /* not yet resolved */
    uint64_t records; /* ... and their records */
    uint32_t buckets; /* holding any */
} fw_spool_usage_t;

void fw_spool_usage(const fw_spool_t *s, fw_spool_usage_t *u);

#endif
