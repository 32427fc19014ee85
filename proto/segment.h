/*
 * Segments: the files of a bucket, ROOT/<category>/<bucket>/<segment-id>.seg
 * (the id zero-padded to 20 digits, so names sort as ids do). A segment is a
 * header, then blocks back to back, ended by a seal block when it is rolled.
 *
 *   0       4   5       6          8            16       24           32
 *   +-------+---+-------+----------+------------+--------+------------+
 *   | magic |ver|cat_len|header_len| segment_id | epoch  | created_ms |
 *   | FWSG  | 1 | u8    | u16      | u64        | u64    | i64        |
 *   +-------+---+-------+----------+------------+--------+------------+
 *   32       36         40               40+cat_len
 *   +--------+----------+----------------+------------+
 *   | bucket | reserved | category bytes | header_crc |  header_len = 44 + cat_len
 *   | u32    | u32 = 0  | cat_len bytes  | u32        |
 *   +--------+----------+----------------+------------+
 *   then: block, block, ..., [seal block]
 *
 * header_crc = CRC32C of every header byte before it. A position in a
 * segment is the byte offset of a block; the first block is at header_len.
 *
 * This file has three parts: the writer (blocking calls, run off the event
 * loop by whoever owns the disk), the reader (iterates blocks and tells a
 * growing file from a sealed or damaged one) and recovery (truncates a torn
 * tail after the last whole valid block).
 */
#ifndef FW_SEGMENT_H
#define FW_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block.h"
#include "names.h"

#define FW_SEG_HEADER_FIXED 40
#define FW_SEG_HEADER_MAX   (FW_SEG_HEADER_FIXED + FW_CATEGORY_MAX + 4)
#define FW_SEG_VERSION      1

typedef struct fw_seg_header_s {
    uint64_t segment_id;
    uint64_t epoch;
    int64_t created_ms;
    uint32_t bucket;
    uint32_t header_len; /* filled in by encode and parse */
    char category[FW_CATEGORY_MAX + 1];
} fw_seg_header_t;

/*
 * The length of a segment header of a category with a name of cat_len bytes,
 * which is where the segment's first block starts: a segment's every block
 * offset, and so every position inside it, is at least this.
 */
static inline uint32_t fw_seg_first_block(size_t cat_len)
{
    return (uint32_t)(FW_SEG_HEADER_FIXED + cat_len + 4);
}

/*
 * Encodes h into out (FW_SEG_HEADER_MAX bytes); returns the length, or
 * FW_EBAD_CATEGORY / FW_EBUCKET_RANGE.
 */
int fw_seg_header_encode(uint8_t *out, fw_seg_header_t *h);

/* Parses a header from buf[0..len). 0, -EAGAIN if incomplete, or FW_ESEG_HEADER. */
int fw_seg_header_parse(const uint8_t *buf, size_t len, fw_seg_header_t *h);

/* ---- writer ------------------------------------------------------------ */

/*
 * An open segment being appended to. It writes at its own tracked offset
 * (never O_APPEND) and, after any failed fdatasync, refuses all further
 * work: the kernel may have dropped the unsynced pages (fsyncgate), so a
 * retried sync proves nothing.
 */
typedef struct fw_segw_s {
    int fd;
    int failed; /* a sync failed: FW_ESEG_FAILED from now on */
    int sealed;
    uint64_t end;    /* bytes written (and kept) */
    uint64_t synced; /* bytes covered by the last successful fdatasync */
    uint64_t blocks;
    uint64_t records;
    fw_seg_header_t header;
    char *path;
} fw_segw_t;

/*
 * Creates dir/<segment-id>.seg (it must not exist), writes the header,
 * fdatasyncs it and fsyncs dir, so the segment survives a crash before its
 * first ack. The writer holds an exclusive flock(2) on the file until
 * fw_segw_close, so another process can tell an abandoned open segment from
 * one still being written (see calligraphus/bucket.c). On error nothing is
 * left behind. 0 or -errno, FW_EBAD_CATEGORY, FW_EBUCKET_RANGE.
 */
int fw_segw_create(const char *dir, const fw_seg_header_t *h, fw_segw_t **out);

/*
 * Appends whole blocks gathered in iov with one positional write (looping on
 * short writes). nblocks and nrecords count what is appended, for the seal.
 * *offset receives where the first byte landed. A failed write that left
 * no whole block is cut off again with ftruncate, so the segment stays
 * usable (a full disk is not fatal). One that left whole blocks (readers
 * may have taken them) or whose cut fails makes the writer fail: the
 * segment is for recovery, which keeps every whole block.
 */
int fw_segw_append(fw_segw_t *w, const struct iovec *iov, int iovcnt, uint32_t nblocks,
                   uint32_t nrecords, uint64_t *offset);

/* fdatasync: everything appended before the call is durable after it returns 0. */
int fw_segw_sync(fw_segw_t *w);

/* Appends the seal block and fdatasyncs. No append is accepted afterwards. */
int fw_segw_seal(fw_segw_t *w, int64_t now_ms);

/* Closes the file (without syncing) and frees w. NULL is fine. */
void fw_segw_close(fw_segw_t *w);

/* ---- reader ------------------------------------------------------------ */

typedef enum {
    FW_SEGR_AGAIN = 0,  /* no whole block at the position yet: the file may grow */
    FW_SEGR_BLOCK = 1,  /* a verified block */
    FW_SEGR_SEALED = 2, /* the seal block: the segment ends here */
} fw_segr_result_t;

typedef struct fw_seg_block_s {
    const uint8_t *data; /* the whole block; valid until the next reader call */
    size_t len;
    uint64_t offset; /* its position in the segment */
    fw_block_header_t header;
} fw_seg_block_t;

typedef struct fw_segr_s fw_segr_t;

/*
 * Opens a segment for reading and parses its header. -EAGAIN if the header
 * is not complete yet (a segment being created), FW_ESEG_HEADER, or -errno.
 * The reader starts at the first block.
 */
int fw_segr_open(const char *path, fw_segr_t **out);
/* The same over an open fd, which stays the caller's. */
int fw_segr_open_fd(int fd, fw_segr_t **out);
void fw_segr_close(fw_segr_t *r);

const fw_seg_header_t *fw_segr_header(const fw_segr_t *r);
/* Offset of the next block the reader will return. */
uint64_t fw_segr_position(const fw_segr_t *r);
/* Moves to offset, which must be a block boundary (checked by the next read). */
int fw_segr_seek(fw_segr_t *r, uint64_t offset);

/*
 * Reads the block at the position and advances past it. Returns a
 * fw_segr_result_t, or FW_ESEG_DAMAGED (see fw_segr_damage) or -errno.
 * After SEALED, further calls return SEALED (and the seal) again. The
 * reader checks the seal's own offset; only a scan from the first block
 * (fw_seg_scan) can check its block and record counts.
 * AGAIN and DAMAGED leave the position where it was, and the next call reads
 * the file again, so a caller may retry after the writer appended more or
 * recovery truncated a torn tail. A damaged block is never returned.
 */
int fw_segr_next(fw_segr_t *r, fw_seg_block_t *b);

/*
 * Steps over the block at the position reading only its 64-byte header
 * (whose CRC vouches for it), as long as the file holds the whole block:
 * BLOCK (header and offset filled in; the position moves past it), SEALED
 * (the seal is at the position, which stays), AGAIN (no whole block there
 * yet), FW_ESEG_DAMAGED (a header that does not check) or -errno. The
 * payload is not read or checked: fw_segr_next does that when the block is
 * read for delivery. For finding a place by the headers' timestamps.
 */
int fw_segr_skim(fw_segr_t *r, fw_block_header_t *h, uint64_t *offset);

/* After FW_ESEG_DAMAGED: where, and why (a block error code). */
void fw_segr_damage(const fw_segr_t *r, uint64_t *offset, int *why);

/* ---- scan and recovery ------------------------------------------------- */

typedef struct fw_seg_scan_s {
    fw_seg_header_t header;
    uint64_t file_size;
    uint64_t valid_end; /* end of the last whole valid block (or seal) */
    uint64_t blocks;    /* data blocks before valid_end */
    uint64_t records;
    int sealed;
    int damage;         /* 0, or the block error at valid_end (torn tails are FW_ESEG_DAMAGED) */
    int partial;        /* the damage is an incomplete last block: a crash or a writer mid-append */
    uint64_t truncated; /* bytes recovery cut off */
} fw_seg_scan_t;

/*
 * Reads a whole segment without changing it. 0 with *s filled (s->damage
 * says whether anything past valid_end is bad), or the header's error.
 */
int fw_seg_scan(const char *path, fw_seg_scan_t *s);

/*
 * Called for each whole data block a scan passes; a negative return (a block
 * error code) marks that block damaged, and the scan stops there as it does
 * for a bad CRC. Lets `freeway verify` decode every record on the way.
 */
typedef int (*fw_seg_block_cb)(const fw_seg_block_t *b, void *arg);

/* fw_seg_scan with a check of every block. */
int fw_seg_scan_blocks(const char *path, fw_seg_scan_t *s, fw_seg_block_cb cb, void *arg);

/*
 * Recovery after a crash: scans, and if anything follows the last whole
 * valid block (a torn or damaged tail, or bytes after the seal) truncates
 * the file there and fsyncs it. Keeps exactly the whole blocks before the
 * damage. Does not seal: the owner decides that.
 */
int fw_seg_recover(const char *path, fw_seg_scan_t *s);

/*
 * Recovery, then a seal at the end if the segment has none: what a new owner
 * does to every unsealed segment of a bucket it takes, before it writes a
 * new one. A segment whose header is torn is left alone (the error says so).
 */
int fw_seg_recover_seal(const char *path, int64_t now_ms, fw_seg_scan_t *s);

#endif
