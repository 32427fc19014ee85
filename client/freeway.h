/*
 * libfreeway: the library applications link to send records to freeway
 * and to read them back. This header is the whole public API; everything
 * else under client/ is private to the library. The producer comes first;
 * the consumer has its own section (and its own rules on threads) below.
 *
 * The producer. fw_producer_send() copies a record into the current batch
 * of its category and bucket and returns at once; an I/O thread owned by the
 * producer turns batches into blocks (lz4, a producer id and a per-bucket
 * sequence number), sends them to the calligraphus writers, retries and
 * fails over, and finally runs the record's callback exactly once: status 0
 * when a writer has stored the record (at the ack level asked for), or a
 * negative code when it cannot be delivered. A retried block is stored once
 * (the writers deduplicate by producer id and sequence), and records with
 * the same category and bucket are stored in the order they were sent.
 *
 * Buckets. A record with a key goes to bucket mix32(crc32c(key)) % buckets (see
 * docs/format.md, "Key to bucket"), so records with one key keep their
 * order; a record without a key goes to a "sticky" bucket that moves on
 * after each block, which spreads load over all buckets.
 *
 * Errors are 0 or negative: a negated errno or one of freeway's codes
 * (FW_E* in common/error.h; fw_strerror() names both). The library never
 * writes to stderr on its own and never aborts; it reports through the log
 * callback in the options.
 *
 * Threads. Every function is thread-safe. Callbacks (delivery and log) run
 * on the producer's I/O thread, one at a time; they must be quick and must
 * not call fw_producer_flush() or fw_producer_close() (those return
 * -EDEADLK there). A callback may call fw_producer_send(), which then never
 * blocks (it fails with FW_ERETRY_LATER when the buffer is full).
 */
#ifndef FREEWAY_H
#define FREEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A producer: one I/O thread, its connections and buffers. */
typedef struct fw_producer_s fw_producer_t;

/** When a writer answers a block: the durability a successful callback means. */
typedef enum {
    /** After the writer's fdatasync (the default): survives a crash of the writer's host. */
    FW_ACKS_DURABLE = 0,
    /** After the write reached the writer's page cache: survives a crash of the writer process. */
    FW_ACKS_WRITTEN = 1,
    /** As soon as the writer has taken the block, before any write. */
    FW_ACKS_NONE = 2,
} fw_acks_t;

/** Compression of the blocks a producer builds. */
typedef enum {
    /** The category's configured codec (lz4 unless the category says otherwise). */
    FW_PRODUCER_CODEC_DEFAULT = 0,
    /** lz4, kept only when it makes the block smaller. */
    FW_PRODUCER_CODEC_LZ4 = 1,
    /** No compression. */
    FW_PRODUCER_CODEC_NONE = 2,
} fw_producer_codec_t;

/** Severity of a message to the log callback. */
typedef enum {
    FW_PRODUCER_LOG_DEBUG = 0,
    FW_PRODUCER_LOG_INFO = 1,
    FW_PRODUCER_LOG_WARN = 2,
    FW_PRODUCER_LOG_ERROR = 3,
} fw_producer_log_level_t;

/**
 * Receives the producer's log messages (one line, no trailing newline; valid
 * during the call). Runs on the I/O thread.
 */
typedef void (*fw_producer_log_cb)(fw_producer_log_level_t level, const char *message, void *arg);

/** When spooled blocks reach stable storage (fw_producer_options_t.spool_sync). */
typedef enum {
    /** Every spool_sync_interval_ms: a host crash may lose that much, a killed process nothing. */
    FW_SPOOL_SYNC_INTERVAL = 0,
    /** Before a record counts as spooled: survives a host crash. */
    FW_SPOOL_SYNC_ALWAYS = 1,
    /** Never explicitly: the kernel writes back when it likes. */
    FW_SPOOL_SYNC_NEVER = 2,
} fw_spool_sync_t;

/** What fw_producer_send() does when the memory buffer and the spool are both full. */
typedef enum {
    /** Waits up to spool_block_ms for room, then fails with -ETIMEDOUT. */
    FW_SPOOL_FULL_BLOCK = 0,
    /** Fails at once with -ENOSPC. */
    FW_SPOOL_FULL_FAIL = 1,
} fw_spool_full_t;

/** What happened to one record; valid only during the delivery callback. */
typedef struct fw_delivery_s {
    /**
     * 0 if a writer stored the record; else why it was not delivered:
     * FW_EUNKNOWN_CATEGORY, FW_EBUCKET_RANGE, FW_ERECORD_TOO_LARGE,
     * FW_EBLOCK_CORRUPT (a writer refused the block), FW_EPROTOCOL,
     * -ETIMEDOUT (not delivered within delivery_timeout_ms),
     * -ECANCELED (the producer was closed first), -ENOMEM. After
     * -ETIMEDOUT or -ECANCELED the record may still have been stored.
     */
    int status;
    /** A message for people: the writer's own words when it gave any; never NULL. */
    const char *message;
    /** The record's category. */
    const char *category;
    /** The bucket the record went to; UINT32_MAX if none was chosen. */
    uint32_t bucket;
    /** When status is 0: the segment that holds the record's block. */
    uint64_t segment_id;
    /** When status is 0: the byte offset of the record's block in that segment. */
    uint64_t offset;
    /** When status is 0: 1 if an earlier try had already stored the block. */
    int duplicate;
    /**
     * When status is 0: 1 if the record went to the spool instead (safe on
     * local disk as spool_sync promises; a writer stores it later, exactly
     * once, with no further callback). segment_id and offset are then 0.
     */
    int spooled;
} fw_delivery_t;

/** A record's delivery callback; runs exactly once per accepted record, on the I/O thread. */
typedef void (*fw_delivery_cb)(const fw_delivery_t *d, void *arg);

/** Producer options; fill with fw_producer_options_init() and change what you need. */
typedef struct fw_producer_options_s {
    /**
     * ZooKeeper "host:port[,host:port...][/chroot]" to discover the writers
     * (children of nodes/calligraphus). NULL: $FREEWAY_ZK, else
     * "127.0.0.1:2181/freeway". Ignored when bootstrap is set.
     */
    const char *zk;
    /**
     * "host:port[,host:port...]": writers to ask first, instead of
     * ZooKeeper; the writers' metadata names the others. NULL or "" for none.
     * A host may be a name, looked up at every connect (as are the names
     * writers publish).
     */
    const char *bootstrap;
    /** The ack level asked of the writers (default FW_ACKS_DURABLE). */
    fw_acks_t acks;
    /** A bucket's batch becomes a block at this many raw bytes (default 256 KiB). */
    size_t batch_bytes;
    /** ... or this long after its first record (default 5 ms; 0 sends at once). */
    uint32_t linger_ms;
    /**
     * Bound on the bytes of records sent but not yet delivered or failed
     * (default 64 MiB); fw_producer_send() waits for room past it.
     */
    size_t max_buffer_bytes;
    /** Produce requests awaiting an answer, per connection (default 8). */
    uint32_t max_in_flight;
    /** Compression (default FW_PRODUCER_CODEC_DEFAULT). */
    fw_producer_codec_t codec;
    /**
     * A record fails with -ETIMEDOUT if not delivered this long after it was
     * sent (default 120000 ms). Counted from the send of its batch's first record.
     */
    uint32_t delivery_timeout_ms;
    /**
     * How long fw_producer_send() waits for room when the buffer is full
     * (default 60000 ms); 0 fails at once with FW_ERETRY_LATER.
     */
    uint32_t send_timeout_ms;
    /**
     * A writer that leaves a request unanswered this long is taken for dead:
     * the connection is closed and its blocks are resent (default 30000 ms,
     * at most delivery_timeout_ms).
     */
    uint32_t request_timeout_ms;
    /** Each category's metadata (buckets, owners) is refreshed this often (default 30000 ms). */
    uint32_t metadata_refresh_ms;
    /** Receives the producer's log messages; NULL drops them. */
    fw_producer_log_cb log_cb;
    /** Passed to log_cb. */
    void *log_arg;
    /** Messages below this level are not passed to log_cb (default FW_PRODUCER_LOG_INFO). */
    fw_producer_log_level_t log_level;
    /**
     * A directory for the spool (docs/spool.md), or NULL for none. With a
     * spool, a bucket whose blocks no writer accepted for spool_after_ms,
     * or any bucket while the memory buffer is full, writes its blocks
     * there (the records' callbacks then say spooled) and sends them from
     * there, in order, once a writer takes them. One producer per
     * directory; a producer created on it later sends what is left.
     */
    const char *spool_dir;
    /** Bound on the spool's files (default 1 GiB). */
    uint64_t spool_max_bytes;
    /** When spooled blocks are fdatasync'd (default FW_SPOOL_SYNC_INTERVAL). */
    fw_spool_sync_t spool_sync;
    /** The interval of FW_SPOOL_SYNC_INTERVAL (default 100 ms). */
    uint32_t spool_sync_interval_ms;
    /** A bucket spools after its blocks waited this long with none accepted (default 5000 ms). */
    uint32_t spool_after_ms;
    /** When the memory buffer and the spool are full (default FW_SPOOL_FULL_BLOCK). */
    fw_spool_full_t spool_full;
    /** How long FW_SPOOL_FULL_BLOCK waits (default 60000 ms). */
    uint32_t spool_block_ms;
    /**
     * The end-to-end audit (docs/operations.md, "Audit"): every
     * audit_interval_ms the producer sends what writers acked since its last
     * report, counted by category, bucket and minute, as one record per
     * category to this category (default "freeway.audit"; NULL or "" for no
     * reports), and a last, final report at fw_producer_close. If the
     * category does not exist, reporting stops with one log line. Reports
     * are not the application's records: no callback, not in the record
     * counts of the stats, and fw_producer_flush does not wait for them;
     * fw_producer_close waits for them at most 1 s (within its timeout),
     * and they do not change what it returns.
     */
    const char *audit_category;
    /** The report interval (default 10000 ms). */
    uint32_t audit_interval_ms;
} fw_producer_options_t;

/** Counters of one producer (fw_producer_stats). */
typedef struct fw_producer_stats_s {
    /** Records accepted by fw_producer_send() and not yet sent to a writer. */
    uint64_t records_queued;
    /** Records in blocks sent and not yet answered. */
    uint64_t records_in_flight;
    /** Records a writer acked with a callback (status 0, not spooled), duplicates included. */
    uint64_t records_acked;
    /** Records whose callback reported a failure. */
    uint64_t records_failed;
    /** Records delivered in blocks a writer had already stored (an earlier try). */
    uint64_t records_duplicate;
    /** Bytes held for records not yet delivered (what max_buffer_bytes bounds). */
    uint64_t bytes_buffered;
    /** Record bytes (key + value) delivered. */
    uint64_t bytes_acked;
    /** Block bytes (after compression) delivered. */
    uint64_t block_bytes_acked;
    /** Blocks delivered. */
    uint64_t blocks_acked;
    /** Block sends, first tries and retries. */
    uint64_t blocks_sent;
    /** Block sends that were retries. */
    uint64_t blocks_retried;
    /** Blocks renumbered after a writer lost blocks it had acked at a weak ack level. */
    uint64_t blocks_renumbered;
    /** Produce requests sent. */
    uint64_t requests_sent;
    /** Metadata requests sent. */
    uint64_t metadata_requests;
    /** Connections to writers opened (successfully). */
    uint64_t connects;
    /** Connections to writers that failed or broke. */
    uint64_t disconnects;
    /** Records whose callback said spooled (status 0, spooled 1). */
    uint64_t records_spooled;
    /** Blocks now in the spool, not yet acked by a writer (earlier producers' included). */
    uint64_t spool_blocks;
    /** ... their records. */
    uint64_t spool_records;
    /** Bytes of the spool's files now. */
    uint64_t spool_bytes;
    /** Blocks sent from the spool (first tries). */
    uint64_t blocks_replayed;
    /** Records sent from the spool that a writer acked (duplicates included). */
    uint64_t records_replay_acked;
    /** Records sent from the spool that a writer refused for good (logged). */
    uint64_t records_replay_failed;
} fw_producer_stats_t;

/** Fills *o with the defaults documented on each member. */
void fw_producer_options_init(fw_producer_options_t *o);

/**
 * Creates a producer and starts its I/O thread; *out is set on success. It
 * connects in the background: sends do not wait for it. 0, -EINVAL (bad
 * options: an unparsable zk or bootstrap string, a zero size), -ENOMEM, or
 * a negated errno from starting the thread. The options are copied.
 */
int fw_producer_create(fw_producer_t **out, const fw_producer_options_t *o);

/**
 * Queues one record for category and returns without waiting for the
 * network. key may be NULL (no key: a sticky bucket); a non-NULL key of
 * length 0 is an empty key. timestamp_ms is milliseconds since the epoch, 0
 * for now. key and value are copied. On 0, cb(d, arg) runs exactly once
 * later on the I/O thread (cb may be NULL). Otherwise cb never runs and the
 * result is FW_EBAD_CATEGORY, FW_ERECORD_TOO_LARGE (key + value over the
 * category's max_record_bytes or the hard cap of 16 MiB), -EMSGSIZE (the
 * record alone exceeds max_buffer_bytes), FW_ERETRY_LATER (the buffer stayed
 * full for send_timeout_ms), -ESHUTDOWN (the producer is closing), -EINVAL,
 * or -ENOMEM. A category unknown to freeway is accepted here and fails in
 * the callback with FW_EUNKNOWN_CATEGORY.
 */
int fw_producer_send(fw_producer_t *p, const char *category, const void *key, size_t key_len,
                     const void *value, size_t value_len, int64_t timestamp_ms, fw_delivery_cb cb,
                     void *arg);

/**
 * Sends every batch now and waits until every record sent before the call
 * has had its callback (those sent meanwhile by other threads may or may
 * not be waited for). timeout_ms < 0 waits without limit. 0, -ETIMEDOUT, or
 * -EDEADLK when called on the I/O thread.
 */
int fw_producer_flush(fw_producer_t *p, int timeout_ms);

/**
 * fw_producer_flush(), then waits until the spool holds nothing a writer has
 * not acked (and no block waits for room in it). timeout_ms covers both
 * (< 0: no limit). 0 at once without a spool; -ETIMEDOUT; -EDEADLK on the
 * I/O thread.
 */
int fw_producer_drain_spool(fw_producer_t *p, int timeout_ms);

/**
 * Stops accepting records (fw_producer_send returns -ESHUTDOWN), flushes for
 * up to timeout_ms (< 0: without limit), fails what is still undelivered
 * with -ECANCELED (with a spool: writes it to the spool instead, where the
 * next producer on that directory finds it; it does not wait for the spool
 * to drain: see fw_producer_drain_spool), stops the I/O thread and frees the producer. Returns 0
 * if every record was delivered or failed by the writers' answers in time,
 * -ETIMEDOUT if some were cancelled, -EDEADLK (and does nothing) on the I/O
 * thread. fw_producer_close(NULL, ...) is a no-op. No other call on p may
 * run concurrently with it or after it (other threads must have stopped
 * sending first).
 */
int fw_producer_close(fw_producer_t *p, int timeout_ms);

/** Copies the producer's counters into *s. */
void fw_producer_stats(fw_producer_t *p, fw_producer_stats_t *s);

/** The producer's random, non-zero 64-bit id (the block header's producer_id). */
uint64_t fw_producer_id(const fw_producer_t *p);

/** The bucket a record with this key goes to in a category of `buckets` buckets (> 0). */
uint32_t fw_key_bucket(const void *key, size_t key_len, uint32_t buckets);

/* ---- the consumer ------------------------------------------------------------------------------
 *
 * A consumer reads one category (all of its buckets, or some) from ptail
 * and hands each record to the application once, in stored order within a
 * bucket. It has no thread of its own: fw_consumer_poll() runs its I/O in
 * the caller's thread, and every callback runs inside fw_consumer_poll().
 *
 * Exactly once. The consumer keeps, per bucket, the position of the next
 * record after the last one it handed to on_record. When a connection
 * breaks (ptail killed, a network fault, a damaged block) it connects to any
 * ptail (the children of nodes/ptail in ZooKeeper, or the `ptail` list) and
 * resumes from those positions, so no record is skipped and none repeats.
 * fw_consumer_checkpoint() gives the same positions as a token: an
 * application that stores the token with its own state, atomically, can
 * restart from it (FW_START_CHECKPOINT) and get exactly the records after
 * it, from any ptail serving the same data or a copy of it.
 *
 * In short:
 *
 *   fw_consumer_options_t o;
 *   fw_consumer_options_init(&o);
 *   o.category = "web";
 *   o.start = FW_START_CHECKPOINT;           (or FW_START_EARLIEST the first time)
 *   o.start_token = saved, o.start_token_len = saved_len;
 *   o.on_record = handle;                    (runs inside fw_consumer_poll)
 *   o.on_checkpoint = save_with_my_state;    (or fw_consumer_checkpoint() at any time)
 *   fw_consumer_create(&c, &o);
 *   while ((rc = fw_consumer_poll(c, 1000)) >= 0)
 *       ;                                    (rc < 0: fatal, see fw_consumer_error)
 *   fw_consumer_close(c);
 *
 * Threads. A consumer is used by one thread at a time (it need not be the
 * same thread each time); only fw_consumer_wakeup() may be called from any
 * thread or from a signal handler. Callbacks may call fw_consumer_checkpoint(),
 * fw_consumer_break(), fw_consumer_stats() and fw_consumer_error(); poll and
 * close return -EDEADLK there.
 */

/** A consumer: one subscription, its connection and positions. */
typedef struct fw_consumer_s fw_consumer_t;

/** Where a consumer starts reading each bucket. */
typedef enum {
    /** The oldest record still stored. */
    FW_START_EARLIEST = 0,
    /** Only records stored after the subscription began. */
    FW_START_LATEST = 1,
    /** Right after the positions of a checkpoint token (start_token). */
    FW_START_CHECKPOINT = 2,
    /** The first block whose newest record is at or after start_ts_ms. */
    FW_START_TIMESTAMP = 3,
} fw_start_t;

/** Severity of a message to the consumer's log callback (same values as the producer's). */
typedef enum {
    FW_CONSUMER_LOG_DEBUG = 0,
    FW_CONSUMER_LOG_INFO = 1,
    FW_CONSUMER_LOG_WARN = 2,
    FW_CONSUMER_LOG_ERROR = 3,
} fw_consumer_log_level_t;

/** Receives the consumer's log messages (one line, no newline; valid during the call). */
typedef void (*fw_consumer_log_cb)(fw_consumer_log_level_t level, const char *message, void *arg);

/** A place in a bucket: a record's, or "the next record" in a checkpoint. */
typedef struct fw_consumer_position_s {
    uint32_t bucket;
    /** The segment file's id. */
    uint64_t segment_id;
    /** The byte offset of the record's block in the segment. */
    uint64_t offset;
    /** The record's index in its block. */
    uint32_t record_index;
} fw_consumer_position_t;

/** One record; every pointer is valid only during the on_record callback. */
typedef struct fw_consumer_record_s {
    uint32_t bucket;
    uint64_t segment_id;
    /** The byte offset of the record's block in its segment. */
    uint64_t offset;
    /** The record's index in its block. */
    uint32_t record_index;
    /** Milliseconds since the epoch, as the producer set it. */
    int64_t timestamp;
    /** 1 if the record has a key (which may be empty), 0 if not. */
    int has_key;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} fw_consumer_record_t;

/** Records ptail cannot deliver (damaged beyond repair, deleted by retention). */
typedef struct fw_consumer_gap_s {
    uint32_t bucket;
    /** The first position not delivered. */
    fw_consumer_position_t from;
    /** Where the bucket goes on. */
    fw_consumer_position_t to;
    /** ptail's words; valid during the callback. */
    const char *reason;
} fw_consumer_gap_t;

/**
 * A record. The consumer counts it delivered before the call, so a token
 * taken inside the callback (fw_consumer_checkpoint) includes it.
 */
typedef void (*fw_consumer_record_cb)(const fw_consumer_record_t *r, void *arg);
/**
 * ptail marked a checkpoint: token (binary, len bytes, valid during the call)
 * holds the consumer's positions now, the same as fw_consumer_checkpoint()
 * would return. Store it with your state to resume from it.
 */
typedef void (*fw_consumer_checkpoint_cb)(const void *token, size_t len, void *arg);
/** ptail reported records it cannot deliver; the stream goes on at g->to. */
typedef void (*fw_consumer_gap_cb)(const fw_consumer_gap_t *g, void *arg);

/** Consumer options; fill with fw_consumer_options_init() and change what you need. */
typedef struct fw_consumer_options_s {
    /**
     * ZooKeeper "host:port[,host:port...][/chroot]" to find ptail (the
     * children of nodes/ptail). NULL: $FREEWAY_ZK, else
     * "127.0.0.1:2181/freeway". Ignored when ptail is set.
     */
    const char *zk;
    /**
     * "host:port[,host:port...]": ptail servers to use instead of ZooKeeper. NULL or "" for none.
     * A host may be a name, looked up at every connect.
     */
    const char *ptail;
    /** The category to read; required. */
    const char *category;
    /** The buckets to read (nbuckets entries, any order); NULL: every bucket, also ones added
     * later. */
    const uint32_t *buckets;
    size_t nbuckets;
    /** Where to start (default FW_START_LATEST). */
    fw_start_t start;
    /** FW_START_CHECKPOINT: a binary token of this category (copied). */
    const void *start_token;
    size_t start_token_len;
    /** FW_START_TIMESTAMP: milliseconds since the epoch. */
    int64_t start_ts_ms;
    /** ptail marks a checkpoint after this many records (default 1000; 0: not by count)... */
    uint32_t checkpoint_every_records;
    /** ... or this long after the last one, if records came since (default 1000 ms; 0: not by
     * time). */
    uint32_t checkpoint_every_ms;
    /**
     * Flow control: the bytes ptail may have sent that the application has
     * not taken yet (default 4 MiB). The consumer grants more as records
     * are delivered; it buffers at most this plus one block.
     */
    size_t credit_bytes;
    /** A name for ptail's metrics and logs; NULL for none. */
    const char *name;
    /** Receives every record; required. */
    fw_consumer_record_cb on_record;
    /** Receives checkpoint tokens; may be NULL. */
    fw_consumer_checkpoint_cb on_checkpoint;
    /** Receives gaps; may be NULL (they are logged at warning level either way). */
    fw_consumer_gap_cb on_gap;
    /** Passed to on_record, on_checkpoint and on_gap. */
    void *arg;
    /** Receives the consumer's log messages; NULL drops them. */
    fw_consumer_log_cb log_cb;
    /** Passed to log_cb. */
    void *log_arg;
    /** Messages below this level are not passed to log_cb (default FW_CONSUMER_LOG_INFO). */
    fw_consumer_log_level_t log_level;
    /**
     * The end-to-end audit, for consumers that opt in (docs/operations.md,
     * "Audit"): a producer of the application's through which the consumer
     * sends, every audit_interval_ms (checked in fw_consumer_poll) and at
     * fw_consumer_close, the records it handed to on_record since its last
     * report, by bucket and minute, with the stretches of positions they
     * cover. name is required with it: the audit shows the consumer under
     * that name. The producer must outlive the consumer. NULL: no reports.
     */
    fw_producer_t *audit_producer;
    /** The audit category (default "freeway.audit"). */
    const char *audit_category;
    /** The report interval (default 10000 ms). */
    uint32_t audit_interval_ms;
} fw_consumer_options_t;

/** Counters of one consumer (fw_consumer_stats). */
typedef struct fw_consumer_stats_s {
    /** Records handed to on_record. */
    uint64_t records;
    /** Key and value bytes of those records. */
    uint64_t bytes;
    /** Blocks received whose records were (at least partly) new. */
    uint64_t blocks;
    /** Records received again after a resume and not delivered again. */
    uint64_t records_skipped;
    /** Checkpoints ptail marked. */
    uint64_t checkpoints;
    /** Gaps ptail reported. */
    uint64_t gaps;
    /** Subscriptions ptail accepted (the first and every resume). */
    uint64_t subscriptions;
    /** Connections that failed or broke. */
    uint64_t disconnects;
    /** Blocks refused for a bad CRC or structure (each costs a reconnect). */
    uint64_t bad_blocks;
    /**
     * Records that came after a position without the records between them,
     * inside one segment, and without a gap message: a ptail fault. Logged
     * at error level; should stay 0.
     */
    uint64_t jumps;
} fw_consumer_stats_t;

/** Fills *o with the defaults documented on each member. */
void fw_consumer_options_init(fw_consumer_options_t *o);

/**
 * Creates a consumer; *out is set on success. Nothing is sent before the
 * first fw_consumer_poll(). 0, -EINVAL (no category or on_record, a zero
 * credit, a bucket >= 65536, an unparsable zk or ptail list, an unknown
 * start), FW_EBAD_CATEGORY, FW_ETOKEN_BAD / FW_ETOKEN_CRC / FW_ETOKEN_VERSION
 * (a start token that does not decode or names another category), or
 * -ENOMEM. The options and what they point to are copied.
 */
int fw_consumer_create(fw_consumer_t **out, const fw_consumer_options_t *o);

/**
 * Runs the consumer (connecting, reconnecting, reading) until at least one
 * callback has run, the timeout has passed (timeout_ms < 0: no limit; 0:
 * only what is ready now), fw_consumer_break() was called in a callback or
 * fw_consumer_wakeup() from elsewhere. Returns the number of records
 * delivered (0 when it timed out or only a checkpoint or gap came), or a
 * fatal error that reconnecting cannot fix, after which every call returns
 * it again: FW_EUNKNOWN_CATEGORY, FW_EBUCKET_RANGE, FW_ETOKEN_BAD (ptail
 * refused the start token), FW_EPROTOCOL (ptail refused the request).
 * -EDEADLK inside a callback. Lost connections, damaged blocks and
 * unreachable servers are not errors: the consumer logs them and retries.
 */
int fw_consumer_poll(fw_consumer_t *c, int timeout_ms);

/**
 * From a callback: ends the current poll once the callback returns. The
 * records not delivered yet stay buffered (and uncredited) for the next poll.
 */
void fw_consumer_break(fw_consumer_t *c);

/**
 * Makes a poll in progress (or the next one) return soon. Safe from any
 * thread and from a signal handler, until fw_consumer_close() begins.
 */
void fw_consumer_wakeup(fw_consumer_t *c);

/**
 * A binary token for "every record delivered so far" (also the current
 * record inside on_record): *token is malloc'd (free it with free()), *len
 * its size. 0, -EAGAIN if there is nothing to say yet (no position known:
 * before ptail's first answer, or with FW_START_LATEST / FW_START_TIMESTAMP
 * before ptail's first checkpoint named every bucket), or -ENOMEM.
 */
int fw_consumer_checkpoint(fw_consumer_t *c, void **token, size_t *len);

/**
 * Closes the connection and the ZooKeeper session and frees the consumer.
 * It waits for ZooKeeper to end the session (milliseconds; up to the
 * session timeout of 10 s when ZooKeeper is unreachable). 0, or -EDEADLK
 * (and nothing done) inside a callback. NULL is a no-op.
 */
int fw_consumer_close(fw_consumer_t *c);

/**
 * For people: the fatal error's message (ptail's own words when it gave
 * any), else why the last connection failed, else "". Valid until the next
 * poll or close.
 */
const char *fw_consumer_error(const fw_consumer_t *c);

/** Copies the consumer's counters into *s. */
void fw_consumer_stats(const fw_consumer_t *c, fw_consumer_stats_t *s);

/** The text form of a binary token (base64url), malloc'd and NUL-terminated. 0 or a code. */
int fw_consumer_token_to_text(const void *token, size_t len, char **text);

/**
 * A text token back to binary (*token malloc'd, *len its size). 0,
 * FW_ETOKEN_BAD / FW_ETOKEN_CRC / FW_ETOKEN_VERSION, or -ENOMEM.
 */
int fw_consumer_token_from_text(const char *text, void **token, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
