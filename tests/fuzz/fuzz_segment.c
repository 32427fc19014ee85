/*
 * libFuzzer target: the segment reader and scan over an arbitrary file (a
 * memfd, so no disk is touched), and recovery of a copy.
 */
#include "fuzz.h"
#include "segment.h"

#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd_with(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_segment", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_with(data, size);
    fw_segr_t *r;
    uint64_t last_end = 0;
    if (fw_segr_open_fd(fd, &r) == 0) {
        for (int i = 0; i < 100000; i++) {
            fw_seg_block_t b;
            int rc = fw_segr_next(r, &b);
            if (rc != FW_SEGR_BLOCK && rc != FW_SEGR_SEALED)
                break;
            /* Blocks come back contiguous and inside the file. */
            if (b.offset < last_end || b.offset + b.len > size)
                abort();
            last_end = b.offset + b.len;
            if (rc == FW_SEGR_SEALED)
                break;
        }
        fw_segr_close(r);
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    fw_seg_scan_t s;
    if (fw_seg_scan(path, &s) == 0) {
        if (s.valid_end > s.file_size || (s.damage == 0 && s.valid_end != s.file_size))
            abort();
        fw_seg_scan_t after;
        if (fw_seg_recover(path, &s) != 0 || fw_seg_scan(path, &after) != 0)
            abort();
        /* Recovery leaves a file with no damage and the same whole blocks. */
        if (after.damage != 0 || after.blocks != s.blocks || after.file_size != s.valid_end)
            abort();
    }
    close(fd);
    return 0;
}
