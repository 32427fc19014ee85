/*
 * The segment reader: iterates verified blocks from a position, and tells a
 * growing file ("again"), a sealed end and damage apart. It caches file
 * bytes in one buffer, which grows to a block's size only after that block's
 * header CRC has vouched for the length.
 */
#include "segment.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (256u << 10)

struct fw_segr_s {
    int fd;
    int own_fd;
    fw_seg_header_t header;
    uint64_t pos;
    int sealed; /* the last call returned the seal, which starts at seal_pos */
    uint64_t seal_pos;
    uint8_t *buf; /* file bytes [buf_off, buf_off + buf_len) */
    size_t cap;
    uint64_t buf_off;
    size_t buf_len;
    uint64_t damage_offset;
    int damage_why;
};

/* Makes at least `need` bytes at pos available if the file has them; returns how many are. */
static ssize_t fill(fw_segr_t *r, size_t need)
{
    if (r->pos < r->buf_off || r->pos > r->buf_off + r->buf_len) {
        r->buf_off = r->pos;
        r->buf_len = 0;
    }
    size_t skip = (size_t)(r->pos - r->buf_off);
    size_t have = r->buf_len - skip;
    if (have >= need)
        return (ssize_t)have;
    if (skip > 0) {
        memmove(r->buf, r->buf + skip, have);
        r->buf_off = r->pos;
        r->buf_len = have;
    }
    size_t want = need > READ_CHUNK ? need : READ_CHUNK;
    if (r->cap < want) {
        uint8_t *p = realloc(r->buf, want);
        if (p == NULL)
            return -ENOMEM;
        r->buf = p;
        r->cap = want;
    }
    while (r->buf_len < need) {
        ssize_t n = pread(r->fd, r->buf + r->buf_len, r->cap - r->buf_len,
                          (off_t)(r->buf_off + r->buf_len));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        r->buf_len += (size_t)n;
    }
    return (ssize_t)r->buf_len;
}

/* Drops cached bytes from pos on: they may change (a torn tail truncated and rewritten). */
static void forget_from_pos(fw_segr_t *r)
{
    if (r->pos >= r->buf_off && r->pos <= r->buf_off + r->buf_len)
        r->buf_len = (size_t)(r->pos - r->buf_off);
    else
        r->buf_len = 0;
}

static int damaged(fw_segr_t *r, uint64_t offset, int why)
{
    r->damage_offset = offset;
    r->damage_why = why;
    forget_from_pos(r);
    return FW_ESEG_DAMAGED;
}

int fw_segr_open_fd(int fd, fw_segr_t **out)
{
    fw_segr_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->fd = fd;
    ssize_t have = fill(r, FW_SEG_HEADER_MAX);
    int rc = have < 0 ? (int)have : fw_seg_header_parse(r->buf, (size_t)have, &r->header);
    if (rc < 0) {
        fw_segr_close(r);
        return rc;
    }
    r->pos = r->header.header_len;
    *out = r;
    return 0;
}

int fw_segr_open(const char *path, fw_segr_t **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fw_segr_open_fd(fd, out);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    (*out)->own_fd = 1;
    return 0;
}

void fw_segr_close(fw_segr_t *r)
{
    if (r == NULL)
        return;
    if (r->own_fd)
        close(r->fd);
    free(r->buf);
    free(r);
}

const fw_seg_header_t *fw_segr_header(const fw_segr_t *r)
{
    return &r->header;
}

uint64_t fw_segr_position(const fw_segr_t *r)
{
    return r->pos;
}

int fw_segr_seek(fw_segr_t *r, uint64_t offset)
{
    if (offset < r->header.header_len)
        return -EINVAL;
    r->pos = offset;
    r->sealed = 0;
    return 0;
}

int fw_segr_skim(fw_segr_t *r, fw_block_header_t *h, uint64_t *offset)
{
    if (r->sealed) {
        r->pos = r->seal_pos;
        r->sealed = 0;
    }
    /* A direct pread: the buffer would read a whole chunk for 64 bytes. */
    uint8_t buf[FW_BLOCK_HEADER_SIZE];
    ssize_t n;
    do
        n = pread(r->fd, buf, sizeof(buf), (off_t)r->pos);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n < FW_BLOCK_HEADER_SIZE)
        return FW_SEGR_AGAIN;
    int rc = fw_block_header_parse(buf, sizeof(buf), h);
    if (rc < 0)
        return damaged(r, r->pos, rc);
    struct stat st;
    if (fstat(r->fd, &st) < 0)
        return -errno;
    if (r->pos + fw_block_size(h) > (uint64_t)st.st_size)
        return FW_SEGR_AGAIN;
    *offset = r->pos;
    if (fw_block_is_seal(h))
        return FW_SEGR_SEALED;
    r->pos += fw_block_size(h);
    return FW_SEGR_BLOCK;
}

void fw_segr_damage(const fw_segr_t *r, uint64_t *offset, int *why)
{
    *offset = r->damage_offset;
    *why = r->damage_why;
}

int fw_segr_next(fw_segr_t *r, fw_seg_block_t *b)
{
    fw_block_header_t h;
    /* Past the seal, read the seal again: a sealed segment keeps saying so. */
    if (r->sealed) {
        r->pos = r->seal_pos;
        r->sealed = 0;
    }
    ssize_t have = fill(r, FW_BLOCK_HEADER_SIZE);
    if (have < 0)
        return (int)have;
    const uint8_t *p = r->buf + (r->pos - r->buf_off);
    if (have < FW_BLOCK_HEADER_SIZE) {
        /* A partial header can still be told from garbage by its magic. */
        if (!fw_block_magic_prefix(p, (size_t)have))
            return damaged(r, r->pos, FW_EBLOCK_HEADER);
        forget_from_pos(r);
        return FW_SEGR_AGAIN;
    }
    int rc = fw_block_header_parse(p, (size_t)have, &h);
    if (rc < 0)
        return damaged(r, r->pos, rc);
    size_t size = fw_block_size(&h);
    if ((have = fill(r, size)) < 0)
        return (int)have;
    p = r->buf + (r->pos - r->buf_off);
    if ((size_t)have < size) {
        forget_from_pos(r);
        return FW_SEGR_AGAIN;
    }
    if ((rc = fw_block_verify(p, (size_t)have, &h)) < 0)
        return damaged(r, r->pos, rc);

    b->data = p;
    b->len = size;
    b->offset = r->pos;
    b->header = h;
    if (!fw_block_is_seal(&h)) {
        r->pos += size;
        return FW_SEGR_BLOCK;
    }

    fw_seal_t seal;
    if (fw_seal_parse(p, &h, &seal) < 0 || seal.offset != r->pos)
        return damaged(r, r->pos, FW_EBLOCK_CORRUPT);
    /* Nothing may follow a seal. */
    if ((have = fill(r, size + 1)) < 0)
        return (int)have;
    if ((size_t)have > size)
        return damaged(r, r->pos + size, FW_ESEG_SEALED);
    b->data = r->buf + (r->pos - r->buf_off);
    r->seal_pos = r->pos;
    r->pos += size;
    r->sealed = 1;
    return FW_SEGR_SEALED;
}
