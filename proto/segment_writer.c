/*
 * The segment writer: create (durable header and directory entry), append
 * whole blocks at a tracked offset, fdatasync on request, seal. Blocking
 * calls; the owner runs them off its event loop.
 */
#include "segment.h"

#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define WINDOW 64

/* Writes all of iov at offset, looping over short writes and EINTR. */
static int pwritev_all(int fd, const struct iovec *iov, int iovcnt, uint64_t offset,
                       uint64_t *written)
{
    *written = 0;
    /* Work on a copy of up to WINDOW iovecs, so that a short write can be resumed
     * by adjusting the copy while the caller's array stays intact. */
    struct iovec win[WINDOW];
    while (iovcnt > 0) {
        int n = iovcnt < WINDOW ? iovcnt : WINDOW;
        memcpy(win, iov, sizeof(*iov) * (size_t)n);
        iov += n;
        iovcnt -= n;
        struct iovec *cur = win;
        int left = n;
        while (left > 0) {
            /* An empty entry carries nothing; a window of only empty ones would make
             * pwritev return 0, which below means the write failed. */
            if (cur->iov_len == 0) {
                cur++;
                left--;
                continue;
            }
            ssize_t done = pwritev(fd, cur, left, (off_t)offset);
            if (done < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            if (done == 0)
                return -EIO;
            offset += (uint64_t)done;
            *written += (uint64_t)done;
            while (left > 0 && (size_t)done >= cur->iov_len) {
                done -= (ssize_t)cur->iov_len;
                cur++;
                left--;
            }
            if (left > 0) {
                cur->iov_base = (uint8_t *)cur->iov_base + done;
                cur->iov_len -= (size_t)done;
            }
        }
    }
    return 0;
}

/* The length of the first block gathered in iov (header and payload); UINT64_MAX if unknown. */
static uint64_t first_block_len(const struct iovec *iov, int iovcnt)
{
    uint8_t hdr[FW_BLOCK_HEADER_SIZE];
    size_t have = 0;
    for (int i = 0; i < iovcnt && have < sizeof(hdr); i++) {
        size_t n = iov[i].iov_len < sizeof(hdr) - have ? iov[i].iov_len : sizeof(hdr) - have;
        memcpy(hdr + have, iov[i].iov_base, n);
        have += n;
    }
    if (have < sizeof(hdr))
        return UINT64_MAX;
    /* stored_len at byte 8 (block.h); the appender wrote only blocks it checked. */
    uint32_t stored = (uint32_t)hdr[8] | (uint32_t)hdr[9] << 8 | (uint32_t)hdr[10] << 16 |
                      (uint32_t)hdr[11] << 24;
    return FW_BLOCK_HEADER_SIZE + (uint64_t)stored;
}

int fw_segw_create(const char *dir, const fw_seg_header_t *h, fw_segw_t **out)
{
    char name[FW_SEG_NAME_LEN + 1];
    uint8_t hdr[FW_SEG_HEADER_MAX];
    fw_segw_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->fd = -1;
    w->header = *h;
    int rc = fw_seg_header_encode(hdr, &w->header);
    if (rc < 0)
        goto fail;
    fw_seg_name(name, h->segment_id);
    size_t plen = strlen(dir) + 1 + FW_SEG_NAME_LEN + 1;
    if ((w->path = malloc(plen)) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    snprintf(w->path, plen, "%s/%s", dir, name);
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = -errno;
        goto fail;
    }
    /* Held while the segment is open: a writer taking the bucket over on a
     * shared root recovers the file only once this writer has let go of it. */
    if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        goto fail_unlink;
    }
    struct iovec iov = {hdr, w->header.header_len};
    uint64_t written;
    if ((rc = pwritev_all(w->fd, &iov, 1, 0, &written)) < 0)
        goto fail_unlink;
    if (fdatasync(w->fd) < 0) {
        rc = -errno;
        goto fail_unlink;
    }
    if ((rc = fw_fsync_dir(dir)) < 0)
        goto fail_unlink;
    w->end = w->synced = w->header.header_len;
    *out = w;
    return 0;

fail_unlink:
    unlink(w->path);
fail:
    fw_segw_close(w);
    return rc;
}

int fw_segw_append(fw_segw_t *w, const struct iovec *iov, int iovcnt, uint32_t nblocks,
                   uint32_t nrecords, uint64_t *offset)
{
    if (w->failed)
        return FW_ESEG_FAILED;
    if (w->sealed)
        return FW_ESEG_SEALED;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    uint64_t written;
    int rc = pwritev_all(w->fd, iov, iovcnt, w->end, &written);
    if (rc < 0) {
        /*
         * Whole blocks that landed before the failure are visible: ptail and
         * the copier read what is written, not only what is synced, and may
         * have taken them. Cutting them off would change bytes they handed on,
         * so they stay and the writer fails: recovery (fw_seg_recover) keeps
         * every whole block and cuts the torn rest. A write that left no whole
         * block is cut off again, and the segment stays usable (a full disk is
         * not fatal).
         */
        if (written >= first_block_len(iov, iovcnt) || ftruncate(w->fd, (off_t)w->end) < 0)
            w->failed = 1;
        return rc;
    }
    *offset = w->end;
    w->end += total;
    w->blocks += nblocks;
    w->records += nrecords;
    return 0;
}

int fw_segw_sync(fw_segw_t *w)
{
    if (w->failed)
        return FW_ESEG_FAILED;
    uint64_t end = w->end;
    if (fdatasync(w->fd) < 0) {
        /* Never retry-and-trust: the kernel may have dropped the dirty pages. */
        w->failed = 1;
        return -errno;
    }
    w->synced = end;
    return 0;
}

int fw_segw_seal(fw_segw_t *w, int64_t now_ms)
{
    if (w->failed)
        return FW_ESEG_FAILED;
    if (w->sealed)
        return FW_ESEG_SEALED;
    uint8_t seal[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_seal_t s = {w->blocks, w->records, w->end};
    fw_seal_encode(seal, &s, now_ms);
    struct iovec iov = {seal, sizeof(seal)};
    uint64_t off;
    int rc = fw_segw_append(w, &iov, 1, 0, 0, &off);
    if (rc < 0)
        return rc;
    if ((rc = fw_segw_sync(w)) < 0)
        return rc;
    w->sealed = 1;
    return 0;
}

void fw_segw_close(fw_segw_t *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    free(w);
}
