/*
 * client/spool.c under a transient error: opening a spool file for replay
 * fails with EMFILE (every descriptor taken). fw_spool_read must report it
 * and keep the file, not give it up as damaged and delete its blocks (it
 * did, before the fix).
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "block.h"
#include "error.h"
#include "names.h"
#include "segment.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void log_print(fw_producer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    fprintf(stderr, "spool log (level %d): %s\n", (int)level, message);
}

static void block_make(fw_buf_t *out, uint64_t pid, uint64_t seq)
{
    fw_block_builder_t bld;
    fw_block_builder_init(&bld, 0);
    char v[64];
    int n = snprintf(v, sizeof(v), "producer %" PRIx64 " seq %" PRIu64, pid, seq);
    FWT_ASSERT_OK(fw_block_builder_add(&bld, 1700000000000, NULL, 0, 0, v, (size_t)n));
    const uint8_t *p;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&bld, FW_CODEC_NONE, pid, seq, &p, &len));
    fw_buf_reset(out);
    FWT_ASSERT_OK(fw_buf_append(out, p, len));
    fw_block_builder_free(&bld);
}

FWT_TEST(emfile_while_opening_a_spool_file_for_replay_loses_nothing)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/spool", fwt_tmpdir());
    fw_spool_config_t c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.max_bytes = 1ull << 30;
    c.sync = FW_SPOOL_SYNC_ALWAYS;
    c.log_cb = log_print;
    char err[512];
    fw_spool_t *s = NULL;
    FWT_ASSERT_OK(fw_spool_open(&c, &s, err, sizeof(err)));
    fw_spool_bucket_t *b = fw_spool_bucket(s, "c", 0, 1);
    FWT_ASSERT(b != NULL);
    fw_buf_t blk = FW_BUF_INIT;
    for (uint64_t seq = 1; seq <= 5; seq++) {
        block_make(&blk, 0x1234, seq);
        FWT_ASSERT_OK(fw_spool_append(s, b, blk.data, blk.len, 1));
    }
    fw_spool_usage_t u;
    fw_spool_usage(s, &u);
    FWT_ASSERT_UINT_EQ(u.blocks, 5);

    /* Every descriptor taken, as by a busy process: the next open() fails with EMFILE. */
    int fds[65536], nfd = 0;
    int fd;
    while (nfd < 65536 && (fd = dup(2)) >= 0)
        fds[nfd++] = fd;
    FWT_ASSERT(errno == EMFILE);
    fw_spool_block_t got;
    int rc = fw_spool_read(s, b, &blk, &got);
    while (nfd > 0)
        close(fds[--nfd]);

    /* The error passed; the spool should still hold the 5 blocks, unread. */
    fw_spool_usage(s, &u);
    fprintf(stderr,
            "read under EMFILE returned %d; usage now %" PRIu64 " blocks, %" PRIu64
            " bytes; next read returns %d\n",
            rc, u.blocks, u.bytes, fw_spool_read(s, b, &blk, &got));
    fw_spool_close(s);
    /* A new spool on the directory finds nothing either: the file was unlinked. */
    FWT_ASSERT_OK(fw_spool_open(&c, &s, err, sizeof(err)));
    fw_spool_usage(s, &u);
    fw_spool_close(s);
    fw_buf_free(&blk);
    FWT_ASSERT_UINT_EQ(u.blocks, 5);
}
