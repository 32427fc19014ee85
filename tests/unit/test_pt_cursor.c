/*
 * ptail's cursor over real segment files: whatever the files look like at
 * the moment (a segment sealed, the next one's header half written, a
 * segment deleted), the cursor's position is a place a checkpoint token can
 * name, since ptail builds checkpoints from the cursors at any moment.
 */
#include "fwtest.h"
#include "fwt_proc.h"
#include "fwt_root.h"

#include "block.h"
#include "checkpoint.h"
#include "error.h"
#include "names.h"
#include "segment.h"
#include "ptail/cursor.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CATEGORY "clicks"

/* A segment of `blocks` blocks of 3 records each, block b's records at 1000 * id + b. */
static void write_segment(const char *dir, uint64_t id, int blocks, int sealed)
{
    fwt_segment_write(dir, CATEGORY, id, blocks, 3, 1000 * (int64_t)id, sealed);
}

static void segment_path(const char *dir, uint64_t id, char *out, size_t n)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, n, "%s/%s", dir, name);
}

/* The cursor's position goes into a token and comes back unchanged. */
static void assert_nameable(const pt_cursor_t *c)
{
    fw_checkpoint_t cp = {.count = 1, .positions = (fw_position_t *)&c->pos};
    strcpy(cp.category, CATEGORY);
    fw_buf_t token = FW_BUF_INIT;
    int rc = fw_checkpoint_encode(&cp, &token);
    if (rc < 0)
        FWT_FAIL("position %llu/%llu/%u cannot be put in a token: %s",
                 (unsigned long long)c->pos.segment_id, (unsigned long long)c->pos.offset,
                 c->pos.record_index, fw_strerror(rc));
    fw_checkpoint_t back = {0};
    FWT_ASSERT_OK(fw_checkpoint_decode(token.data, token.len, &back));
    FWT_ASSERT_UINT_EQ(back.positions[0].segment_id, c->pos.segment_id);
    FWT_ASSERT_UINT_EQ(back.positions[0].offset, c->pos.offset);
    fw_checkpoint_free(&back);
    fw_buf_free(&token);
}

/* Reads blocks until the cursor says AGAIN; returns how many, checking the position at each. */
static int drain(pt_cursor_t *c)
{
    int blocks = 0;
    for (;;) {
        int rc = pt_cursor_next(c, 0, 0);
        FWT_ASSERT_INT_OP(rc, >=, 0);
        assert_nameable(c);
        if (rc == PT_CURSOR_AGAIN)
            return blocks;
        FWT_ASSERT_INT_EQ(rc, PT_CURSOR_BLOCK);
        blocks++;
    }
}

FWT_TEST(a_half_written_next_segment_leaves_a_nameable_position)
{
    const char *dir = fwt_tmpdir_mem();
    write_segment(dir, 1, 3, 1);
    /* Segment 4's header, written in two steps as a writer creating it might be seen. */
    const char *scratch = fwt_tmpdir_mem();
    write_segment(scratch, 4, 2, 0);
    char from[1200], to[1200];
    segment_path(scratch, 4, from, sizeof(from));
    segment_path(dir, 4, to, sizeof(to));
    FILE *in = fopen(from, "rb");
    FWT_ASSERT(in != NULL);
    static uint8_t bytes[1 << 16];
    size_t n = fread(bytes, 1, sizeof(bytes), in);
    fclose(in);
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FWT_ASSERT(fd >= 0);
    FWT_ASSERT_INT_EQ(write(fd, bytes, 20), 20);

    pt_cursor_t c;
    pt_cursor_init(&c, dir, CATEGORY, 0);
    assert_nameable(&c); /* 0/0/0: nothing consumed */
    FWT_ASSERT_INT_EQ(drain(&c), 3);
    /* Sealed 1, and 4 cannot be read yet: the cursor stands at 4's first block. */
    FWT_ASSERT_UINT_EQ(c.pos.segment_id, 4);
    FWT_ASSERT_UINT_EQ(c.pos.offset, fw_seg_first_block(strlen(CATEGORY)));

    FWT_ASSERT_INT_EQ(write(fd, bytes + 20, n - 20), (ssize_t)(n - 20));
    close(fd);
    FWT_ASSERT_INT_EQ(drain(&c), 2);
    FWT_ASSERT_UINT_EQ(c.pos.segment_id, 4);
    FWT_ASSERT_UINT_EQ(c.pos.offset, n);
    pt_cursor_close(&c);
}

FWT_TEST(a_deleted_segment_is_a_gap_to_the_next_first_block)
{
    const char *dir = fwt_tmpdir_mem();
    write_segment(dir, 2, 2, 1);
    write_segment(dir, 5, 1, 1);
    write_segment(dir, 9, 1, 0);
    pt_cursor_t c;
    pt_cursor_init(&c, dir, CATEGORY, 0);
    FWT_ASSERT_INT_EQ(pt_cursor_next(&c, 0, 0), PT_CURSOR_BLOCK);
    fw_position_t at = c.pos; /* inside segment 2, before its second block */
    pt_cursor_close(&c);
    char path[1200];
    segment_path(dir, 2, path, sizeof(path));
    FWT_ASSERT_INT_EQ(unlink(path), 0);
    segment_path(dir, 5, path, sizeof(path));
    FWT_ASSERT_INT_EQ(unlink(path), 0);

    pt_cursor_init(&c, dir, CATEGORY, 0);
    pt_cursor_seek(&c, &at);
    FWT_ASSERT_INT_EQ(pt_cursor_next(&c, 0, 0), PT_CURSOR_GAP);
    FWT_ASSERT_UINT_EQ(c.gap_from.segment_id, 2);
    FWT_ASSERT_UINT_EQ(c.gap_from.offset, at.offset);
    FWT_ASSERT_UINT_EQ(c.gap_to.segment_id, 9);
    FWT_ASSERT_UINT_EQ(c.gap_to.offset, fw_seg_first_block(strlen(CATEGORY)));
    assert_nameable(&c);
    FWT_ASSERT(strstr(c.gap_reason, "no longer exists") != NULL);
    FWT_ASSERT_INT_EQ(drain(&c), 1);
    pt_cursor_close(&c);
}

FWT_TEST(latest_and_time_starts_are_nameable_before_any_block)
{
    const char *dir = fwt_tmpdir_mem();
    write_segment(dir, 3, 2, 1);
    /* The newest segment has only part of its header yet. */
    char path[1200];
    segment_path(dir, 6, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FWT_ASSERT(fd >= 0);
    FWT_ASSERT_INT_EQ(write(fd, "FWSG", 4), 4);
    close(fd);

    pt_cursor_t c;
    pt_cursor_init(&c, dir, CATEGORY, 0);
    FWT_ASSERT_OK(pt_cursor_seek_latest(&c));
    assert_nameable(&c);
    FWT_ASSERT_UINT_EQ(c.pos.segment_id, 6);

    /* A time after every record waits at the end, at a nameable place. */
    FWT_ASSERT_OK(pt_cursor_seek_time(&c, 1000000));
    assert_nameable(&c);
    /* A time inside segment 3 starts at the block holding it. */
    FWT_ASSERT_OK(pt_cursor_seek_time(&c, 3001));
    assert_nameable(&c);
    FWT_ASSERT_UINT_EQ(c.pos.segment_id, 3);
    FWT_ASSERT_INT_EQ(pt_cursor_next(&c, 0, 0), PT_CURSOR_BLOCK);
    FWT_ASSERT_INT_EQ(c.block.header.max_ts, 3001);
    pt_cursor_close(&c);
}

FWT_TEST(a_time_start_skims_block_headers_across_segments)
{
    const char *dir = fwt_tmpdir_mem();
    write_segment(dir, 3, 4, 1); /* blocks' newest records at 3000..3003 */
    write_segment(dir, 5, 2, 1); /* 5000, 5001 */
    write_segment(dir, 8, 1, 0); /* 8000, still open */
    pt_cursor_t c;
    pt_cursor_init(&c, dir, CATEGORY, 0);
    /* Segment 3 was created at or before 4000 but holds nothing that new: 5's first block. */
    FWT_ASSERT_OK(pt_cursor_seek_time(&c, 4000));
    FWT_ASSERT_UINT_EQ(c.pos.segment_id, 5);
    FWT_ASSERT_UINT_EQ(c.pos.offset, fw_seg_first_block(strlen(CATEGORY)));
    FWT_ASSERT_INT_EQ(pt_cursor_next(&c, 0, 0), PT_CURSOR_BLOCK);
    FWT_ASSERT_INT_EQ(c.block.header.max_ts, 5000);
    /* Inside a segment: the block holding the time, not the one before. */
    FWT_ASSERT_OK(pt_cursor_seek_time(&c, 3002));
    FWT_ASSERT_INT_EQ(pt_cursor_next(&c, 0, 0), PT_CURSOR_BLOCK);
    FWT_ASSERT_INT_EQ(c.block.header.max_ts, 3002);
    /* Later than everything: the end of the open segment, where new blocks will come. */
    FWT_ASSERT_OK(pt_cursor_seek_time(&c, 9000));
    FWT_ASSERT_UINT_EQ(c.pos.segment_id, 8);
    FWT_ASSERT_INT_EQ(pt_cursor_next(&c, 0, 0), PT_CURSOR_AGAIN);
    assert_nameable(&c);
    pt_cursor_close(&c);
}
