/*
 * Scan and recovery of segment files: find the last whole valid block (the
 * seal included) and, for recovery, cut off everything after it.
 */
#include "segment.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Takes a verified seal block as the end, if its counts match the blocks before it. */
static void accept_seal(fw_seg_scan_t *s, const uint8_t *block, const fw_block_header_t *h)
{
    fw_seal_t seal;
    if (fw_seal_parse(block, h, &seal) < 0 || seal.blocks != s->blocks ||
        seal.records != s->records) {
        /* A seal that disagrees with the blocks before it vouches for nothing. */
        s->damage = FW_EBLOCK_CORRUPT;
        return;
    }
    s->sealed = 1;
    s->damage = 0;
    s->valid_end = seal.offset + fw_block_size(h);
}

static int reread_seal(int fd, uint64_t offset, fw_seg_scan_t *s)
{
    uint8_t buf[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_block_header_t h;
    ssize_t n = pread(fd, buf, sizeof(buf), (off_t)offset);
    if (n < 0)
        return -errno;
    if (fw_block_verify(buf, (size_t)n, &h) < 0 || !fw_block_is_seal(&h)) {
        s->damage = FW_EBLOCK_CORRUPT;
        return 0;
    }
    accept_seal(s, buf, &h);
    return 0;
}

static int scan_fd(int fd, fw_seg_scan_t *s, fw_seg_block_cb cb, void *arg)
{
    fw_segr_t *r;
    memset(s, 0, sizeof(*s));
    int rc = fw_segr_open_fd(fd, &r);
    if (rc < 0)
        return rc;
    s->header = *fw_segr_header(r);
    s->valid_end = fw_segr_position(r);
    for (;;) {
        fw_seg_block_t b;
        rc = fw_segr_next(r, &b);
        if (rc == FW_SEGR_BLOCK) {
            int why = cb != NULL ? cb(&b, arg) : 0;
            if (why < 0) {
                /* The caller found the block bad (say, its records do not decode). */
                s->damage = why;
                rc = 0;
                break;
            }
            s->blocks++;
            s->records += b.header.record_count;
            s->valid_end = fw_segr_position(r);
            continue;
        }
        if (rc == FW_SEGR_SEALED) {
            accept_seal(s, b.data, &b.header);
            rc = 0;
            break;
        }
        if (rc == FW_SEGR_AGAIN) {
            rc = 0;
            break;
        }
        if (rc == FW_ESEG_DAMAGED) {
            uint64_t off;
            fw_segr_damage(r, &off, &s->damage);
            rc = 0;
            if (s->damage == FW_ESEG_SEALED) {
                /* A valid seal followed by stray bytes: keep the seal, cut the rest. */
                rc = reread_seal(fd, fw_segr_position(r), s);
            }
            break;
        }
        break; /* an I/O error */
    }
    fw_segr_close(r);
    if (rc < 0)
        return rc;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    s->file_size = (uint64_t)st.st_size;
    /* Bytes after the last whole block with no verdict yet are a torn tail. */
    if (s->damage == 0 && s->file_size > s->valid_end) {
        s->damage = FW_ESEG_DAMAGED;
        s->partial = !s->sealed;
    }
    return 0;
}

int fw_seg_scan_blocks(const char *path, fw_seg_scan_t *s, fw_seg_block_cb cb, void *arg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = scan_fd(fd, s, cb, arg);
    close(fd);
    return rc;
}

int fw_seg_scan(const char *path, fw_seg_scan_t *s)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = scan_fd(fd, s, NULL, NULL);
    close(fd);
    return rc;
}

int fw_seg_recover(const char *path, fw_seg_scan_t *s)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = scan_fd(fd, s, NULL, NULL);
    if (rc == 0 && s->file_size > s->valid_end) {
        if (ftruncate(fd, (off_t)s->valid_end) < 0 || fsync(fd) < 0) {
            rc = -errno;
        } else {
            s->truncated = s->file_size - s->valid_end;
            s->file_size = s->valid_end;
        }
    }
    close(fd);
    return rc;
}

int fw_seg_recover_seal(const char *path, int64_t now_ms, fw_seg_scan_t *s)
{
    int rc = fw_seg_recover(path, s);
    if (rc < 0 || s->sealed)
        return rc;
    uint8_t seal[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_seal_t info = {s->blocks, s->records, s->valid_end};
    fw_seal_encode(seal, &info, now_ms);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do {
        n = pwrite(fd, seal, sizeof(seal), (off_t)s->valid_end);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(seal) || fdatasync(fd) < 0) {
        rc = n < 0 || n == (ssize_t)sizeof(seal) ? -errno : -EIO;
        /* Leave no partial seal behind: the file stays as recovery left it. */
        if (ftruncate(fd, (off_t)s->valid_end) < 0)
            rc = -errno;
        close(fd);
        return rc;
    }
    close(fd);
    s->sealed = 1;
    s->valid_end += sizeof(seal);
    s->file_size = s->valid_end;
    return 0;
}
