/*
 * `freeway verify` as a user runs it: a real process over a root of real
 * segment files, some of them damaged on purpose.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include "block.h"
#include "fsutil.h"
#include "segment.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes ROOT/<category>/<bucket>/<id>.seg with n blocks of 10 records; returns its path. */
static char *write_segment(const char *root, const char *category, uint32_t bucket, uint64_t id,
                           int n, int seal)
{
    char dir[1024];
    FWT_ASSERT_OK(fw_seg_bucket_dir(dir, sizeof(dir), root, category, bucket));
    FWT_ASSERT_OK(fw_mkdir_p(dir));
    fw_seg_header_t h = {.segment_id = id, .epoch = 1, .created_ms = 1, .bucket = bucket};
    strcpy(h.category, category);
    fw_segw_t *w;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    fw_block_builder_t b;
    fw_block_builder_init(&b, 0);
    for (int i = 0; i < n; i++) {
        for (int r = 0; r < 10; r++)
            FWT_ASSERT_OK(fw_block_builder_add(&b, 1000 + r, NULL, 0, 0, "a log line", 10));
        const uint8_t *blk;
        size_t len;
        uint64_t off;
        FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_NONE, 1, (uint64_t)i + 1, &blk, &len));
        struct iovec iov = {(void *)blk, len};
        FWT_ASSERT_OK(fw_segw_append(w, &iov, 1, 1, 10, &off));
    }
    if (seal)
        FWT_ASSERT_OK(fw_segw_seal(w, 2));
    fw_block_builder_free(&b);
    char *path = strdup(w->path);
    fw_segw_close(w);
    return path;
}

static int verify(const char *path, char **out)
{
    char *argv[] = {(char *)fwt_bin("freeway"), "verify", (char *)path, NULL};
    return fwt_run(argv, 30000, out);
}

static void expect_output(const char *out, const char *needle)
{
    if (strstr(out, needle) == NULL)
        FWT_FAIL("output lacks \"%s\":\n%s", needle, out);
}

FWT_TEST(clean_root_exits_zero)
{
    const char *root = fwt_tmpdir();
    free(write_segment(root, "web_clicks", 0, 1, 3, 1));
    free(write_segment(root, "web_clicks", 0, 2, 2, 0));
    free(write_segment(root, "web_clicks", 7, 5, 4, 1));
    char *out;
    FWT_ASSERT_INT_EQ(verify(root, &out), 0);
    expect_output(out, "verified 3 segments (1 open): 9 blocks, 90 records; 0 damaged");
    free(out);
}

FWT_TEST(damage_is_reported_with_offset_and_exit_one)
{
    const char *root = fwt_tmpdir();
    free(write_segment(root, "ok_cat", 0, 1, 3, 1));
    char *bad = write_segment(root, "bad_cat", 1, 9, 4, 1);
    /* Flip a byte in the third block's payload. */
    fw_seg_scan_t s;
    FWT_ASSERT_OK(fw_seg_scan(bad, &s));
    uint64_t block_len = (s.valid_end - s.header.header_len - 88) / 4;
    uint64_t third = s.header.header_len + 2 * block_len;
    int fd = open(bad, O_RDWR);
    uint8_t byte;
    FWT_ASSERT_INT_EQ(pread(fd, &byte, 1, (off_t)(third + 70)), 1);
    byte ^= 0x20;
    FWT_ASSERT_INT_EQ(pwrite(fd, &byte, 1, (off_t)(third + 70)), 1);
    close(fd);
    char *out;
    FWT_ASSERT_INT_EQ(verify(root, &out), 1);
    char want[256];
    snprintf(want, sizeof(want), "DAMAGED at offset %llu: block payload CRC32C mismatch (2 whole",
             (unsigned long long)third);
    expect_output(out, want);
    expect_output(out, "; 1 damaged");
    FWT_ASSERT(strstr(out, "ok_cat") == NULL); /* clean files stay quiet */
    free(out);
    free(bad);
}

FWT_TEST(torn_tail_stray_bytes_and_misplaced)
{
    const char *root = fwt_tmpdir();
    char *torn = write_segment(root, "c", 0, 1, 3, 0);
    FWT_ASSERT_INT_EQ(truncate(torn, 200), 0);
    char *stray = write_segment(root, "c", 1, 2, 1, 1);
    int fd = open(stray, O_WRONLY | O_APPEND);
    FWT_ASSERT_INT_EQ(write(fd, "xyz", 3), 3);
    close(fd);
    char *moved = write_segment(root, "c", 2, 3, 1, 1);
    char *dest = malloc(strlen(root) + 64);
    sprintf(dest, "%s/c/3", root);
    FWT_ASSERT_OK(fw_mkdir_p(dest));
    strcat(dest, "/00000000000000000003.seg");
    FWT_ASSERT_INT_EQ(rename(moved, dest), 0);

    char *out;
    FWT_ASSERT_INT_EQ(verify(root, &out), 1);
    expect_output(out, "torn tail, last block incomplete");
    expect_output(out, "3 stray bytes after the seal");
    expect_output(out, "MISPLACED: stored under c/3 but its header says c/2");
    expect_output(out, "; 3 damaged");
    free(out);
    free(torn);
    free(stray);
    free(moved);
    free(dest);
}

FWT_TEST(usage_errors)
{
    char *argv[] = {(char *)fwt_bin("freeway"), "verify", NULL};
    char *out;
    FWT_ASSERT_INT_EQ(fwt_run(argv, 10000, &out), 2);
    expect_output(out, "give at least one PATH");
    free(out);
    char *missing[] = {(char *)fwt_bin("freeway"), "verify", "/nonexistent/root", NULL};
    FWT_ASSERT_INT_EQ(fwt_run(missing, 10000, &out), 1);
    expect_output(out, "/nonexistent/root: cannot read");
    free(out);
    char *help[] = {(char *)fwt_bin("freeway"), "verify", "--help", NULL};
    FWT_ASSERT_INT_EQ(fwt_run(help, 10000, &out), 0);
    expect_output(out, "--verbose");
    free(out);
}
