/*
 * cal_bucket: one owned bucket of a writer. It takes verified blocks from the
 * loop, drops retries (cal_dedup), batches what arrives within the sync
 * interval into one write and one fdatasync on the disk threads (group
 * commit), acks each block at its level once the write or the sync covers
 * it, rolls segments by size and age, and seals on close. A batch is written
 * (and readable) while the previous batch's fdatasync still runs.
 *
 * Opening a bucket recovers it first: every unsealed segment left by an
 * earlier owner or a crash is cut after its last whole block and sealed, the
 * sequence table is rebuilt from the segments, and new data always goes to a
 * new segment with a higher id (never appended to a recovered file).
 *
 * Everything here runs on the loop thread except the job bodies, which run
 * on the disk threads: the write stage touches the job and the open
 * segment, the sync stage only the job and the atomics below. The loop
 * reads the segment only while no write is in flight.
 */
#ifndef CAL_BUCKET_H
#define CAL_BUCKET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <uv.h>

#include "block.h"
#include "dedup.h"
#include "disk.h"
#include "metrics.h"
#include "names.h"
#include "segment.h"

typedef struct cal_bucket_config_s {
    uint64_t roll_bytes;       /* roll when a segment would grow past this */
    int64_t roll_age_ms;       /* ... or is older than this */
    uint32_t sync_interval_ms; /* group-commit window; 0 = write at once */
    size_t batch_bytes;        /* write at once when this much is waiting */
    size_t max_producers;      /* sequence table cap */
    int dedup_segments;        /* rebuild the table from this many newest segments */
} cal_bucket_config_t;

typedef enum {
    CAL_ACK_DURABLE = 0, /* after the fdatasync that covers the block */
    CAL_ACK_WRITTEN = 1, /* after the write */
    CAL_ACK_NONE = 2,    /* the callback still runs, when durable, for accounting */
} cal_ack_t;

typedef struct cal_append_s cal_append_t;

/*
 * A block's outcome: status 0 (stored; duplicate says it was stored by an
 * earlier try), FW_ERETRY_LATER, FW_ESEQUENCE_GAP (expected_seq says what
 * the writer wants next) or another negative code.
 */
typedef void (*cal_append_cb)(cal_append_t *a, int status);

/* One block on its way to disk. The submitter owns it and the block bytes until cb. */
struct cal_append_s {
    const uint8_t *data;
    size_t len;
    fw_block_header_t header; /* verified by the caller */
    cal_ack_t ack;
    cal_append_cb cb;
    void *arg;
    /* results */
    int duplicate;
    int conflict; /* a duplicate whose contents differ from the stored block's (logged) */
    uint64_t segment_id;
    uint64_t offset;
    uint64_t expected_seq;
    /* private */
    cal_append_t *next;
    int acked;
};

typedef enum {
    CAL_BUCKET_OPENING,
    CAL_BUCKET_READY,
    CAL_BUCKET_FAILED, /* a sync failed: nothing more is accepted here */
    CAL_BUCKET_CLOSING,
    CAL_BUCKET_CLOSED,
} cal_bucket_state_t;

typedef struct cal_bucket_s cal_bucket_t;
typedef void (*cal_bucket_cb)(cal_bucket_t *b, int status);
/* The bucket used its spare segment id: reserve another, then cal_bucket_give_segment_id. */
typedef void (*cal_bucket_id_cb)(cal_bucket_t *b);

/* A job of the bucket's on the disk threads. */
typedef struct cal_bucket_job_s {
    cal_disk_job_t disk;
    int kind; /* open, append, close */
    /* append */
    cal_append_t *blocks; /* the appends it writes, in order */
    struct iovec *iov;
    int iovcnt;
    uint32_t nblocks, nrecords;
    size_t bytes;
    uint64_t new_segment_id;       /* roll to this id first; 0 = no roll */
    uint64_t prev_last_segment_id; /* the bucket's last_segment_id before this roll */
    int id_unused;                 /* the roll left no file of new_segment_id: reusable */
    int write_rc, sync_rc;
    uint64_t segment_id, offset; /* where it was written */
    int sync_fd;                 /* the segment's, for the sync stage */
    uint64_t write_no;           /* this bucket's writes so far, this one included */
    int synced;                  /* an fdatasync of its own ran (not one before it) */
    int seg_failed;              /* the segment is unusable after this write */
    int written;                 /* its progress (on_written) has run */
    int64_t sync_ns;
    /* open */
    uint64_t max_segment_id;
    int open_rc;
} cal_bucket_job_t;

struct cal_bucket_s {
    char category[FW_CATEGORY_MAX + 1];
    uint32_t bucket;
    uint64_t epoch;
    char *dir;
    cal_bucket_config_t cfg;
    cal_bucket_state_t state;
    uv_loop_t *loop;
    cal_disk_t *disk;
    uv_timer_t timer;
    cal_dedup_t dedup;

    fw_segw_t *seg; /* the open segment (touched by the write thread during a job) */
    int64_t seg_opened_ms;
    uint64_t next_segment_id; /* the id the next roll uses; 0 = reserved, not here yet */
    uint64_t last_segment_id; /* the highest id on disk or used: new ones go above it */
    /* A roll's id that left no file (a full disk): the next roll takes it and asks for none. */
    uint64_t spare_segment_id;
    /* Set by the owner after open; NULL ids are allocated locally (tests). */
    cal_bucket_id_cb need_segment_id;
    /* CLOCK_MONOTONIC ns until which this writer may still act as the owner
     * (see calligraphus/lease.h); NULL = no lease. Read by the write thread. */
    const _Atomic int64_t *lease_ns;
    int paused; /* ownership in doubt: append nothing, answer retry-later */
    /* Closing without a seal: the bucket belongs to someone else now. Read by
     * the write thread's close job, which may already be running when set. */
    _Atomic int abandon;

    cal_append_t *pending_head, *pending_tail; /* waiting for the next write */
    size_t pending_bytes;
    /*
     * Appends are pipelined: the next batch is written while the previous
     * one's fdatasync runs, so at most two append jobs are out, the older
     * one syncing. A roll, a seal or a close waits until none is out (the
     * sync stage holds the segment's fd).
     */
    cal_bucket_job_t appends[2];
    int appends_out; /* submitted, done_cb not yet run */
    int next_append; /* which of appends[] the next one uses */
    int job_busy;    /* the open or close job is out */
    cal_bucket_job_t job;
    /* Between the disk threads: writes done (write thread), the number of
     * writes the last fdatasync covered and whether one failed (sync thread). */
    _Atomic uint64_t writes_done;
    uint64_t writes_synced;
    _Atomic int sync_failed;
    struct iovec *iov;
    int iov_cap;

    cal_bucket_cb open_cb;
    cal_bucket_cb close_cb;
    void *data; /* the owner's */

    /* metrics, when the owner sets them (NULL in tests) */
    fw_metric_histogram_t *sync_seconds;
    fw_metric_counter_t *records_appended, *bytes_appended;
    fw_metric_gauge_t *segment_id_gauge, *segment_bytes_gauge; /* the segment appended to last */
    /* counters for metrics */
    uint64_t appended_blocks, appended_records, appended_bytes, duplicates, syncs;
    int64_t last_sync_ns;
};

/* The newest append job is still in its write stage (it has not reported "written"). */
static inline int cal_bucket_writing(const cal_bucket_t *b)
{
    return b->appends_out > 0 && !b->appends[b->next_append ^ 1].written;
}

/*
 * Starts recovering bucket dir (ROOT/<category>/<bucket>, created if
 * missing) on the write thread; open_cb(b, status) follows on the loop. New
 * segments get ids from first_segment_id up (and above any on disk).
 */
int cal_bucket_open(cal_bucket_t *b, uv_loop_t *loop, cal_disk_t *disk, const char *root,
                    const char *category, uint32_t bucket, uint64_t epoch,
                    uint64_t first_segment_id, const cal_bucket_config_t *cfg,
                    cal_bucket_cb open_cb);

/* Takes a verified block. Its cb runs exactly once, maybe before this returns. */
void cal_bucket_append(cal_bucket_t *b, cal_append_t *a);

/*
 * Writes what is pending, seals the open segment, and calls close_cb; every
 * append's cb has run by then. Further appends get FW_ERETRY_LATER.
 */
void cal_bucket_close(cal_bucket_t *b, cal_bucket_cb close_cb);

/*
 * The owner's lease lapsed or its ZooKeeper connection broke: append
 * nothing until resumed, fail what waits with FW_ERETRY_LATER and answer new
 * appends so. A write already on the disk threads completes; its acks follow
 * the lease.
 */
void cal_bucket_pause(cal_bucket_t *b);
void cal_bucket_resume(cal_bucket_t *b);

/*
 * The bucket was lost to another writer: like cal_bucket_close, but what
 * waits fails with FW_ERETRY_LATER and the open segment is closed without a
 * seal (the new owner recovers and seals it; we may append nothing more).
 */
void cal_bucket_abandon(cal_bucket_t *b, cal_bucket_cb close_cb);

/*
 * Seals the open segment if it is older than roll_age_ms and nothing waits
 * (appends check the age themselves; this covers a bucket gone quiet, so
 * copiers and retention see it sealed). 1 if a seal was started.
 */
int cal_bucket_seal_if_idle(cal_bucket_t *b);

/* Hands the bucket the segment id it asked for through need_segment_id. */
void cal_bucket_give_segment_id(cal_bucket_t *b, uint64_t id);

/* Defaults for a category with no explicit settings. */
void cal_bucket_config_default(cal_bucket_config_t *cfg);

#endif
