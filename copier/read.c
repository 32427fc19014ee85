/* One read step of a source segment (see read.h). */
#include "read.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int read_header_bytes(const char *path, uint32_t len, fw_buf_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fw_buf_reserve(out, len);
    ssize_t n = rc == 0 ? pread(fd, out->data + out->len, len, 0) : 0;
    if (rc == 0 && n != (ssize_t)len)
        rc = n < 0 ? -errno : -EIO;
    close(fd);
    if (rc == 0)
        out->len += len;
    return rc;
}

void cp_read_run(cp_read_t *r)
{
    fw_buf_reset(&r->out);
    r->end = r->offset;
    r->sealed = 0;
    r->blocks = 0;
    r->oldest_ts = 0;
    r->error = 0;
    fw_segr_t *seg;
    int rc = fw_segr_open(r->path, &seg);
    if (rc == -ENOENT) {
        r->status = CP_READ_GONE;
        return;
    }
    if (rc == -EAGAIN) {
        r->status = CP_READ_NO_HEADER;
        return;
    }
    if (rc == FW_ESEG_HEADER) {
        r->status = CP_READ_DAMAGED;
        r->damage_offset = 0;
        r->damage_why = rc;
        return;
    }
    if (rc < 0) {
        r->status = CP_READ_ERROR;
        r->error = rc;
        return;
    }
    if (r->offset == 0) {
        /* The header is copied as it is on disk (the reader checked its CRC). */
        uint32_t hlen = fw_segr_header(seg)->header_len;
        rc = read_header_bytes(r->path, hlen, &r->out);
        if (rc < 0) {
            fw_segr_close(seg);
            r->status = CP_READ_ERROR;
            r->error = rc;
            return;
        }
        r->end = hlen;
    } else {
        fw_segr_seek(seg, r->offset);
    }
    r->status = CP_READ_DATA;
    for (;;) {
        fw_seg_block_t b;
        rc = fw_segr_next(seg, &b);
        if (rc == FW_SEGR_AGAIN)
            break;
        if (rc == FW_ESEG_DAMAGED) {
            fw_segr_damage(seg, &r->damage_offset, &r->damage_why);
            if (r->out.len == 0)
                r->status = CP_READ_DAMAGED;
            break; /* copy what came before; the next step stops at the damage */
        }
        if (rc < 0) {
            if (r->out.len == 0) {
                r->status = CP_READ_ERROR;
                r->error = rc;
            }
            break;
        }
        if (r->blocks > 0 && r->out.len + b.len > r->limit)
            break;
        if (fw_buf_append(&r->out, b.data, b.len) < 0) {
            if (r->out.len == 0) {
                r->status = CP_READ_ERROR;
                r->error = -ENOMEM;
            }
            break;
        }
        r->end = b.offset + b.len;
        if (rc == FW_SEGR_SEALED) {
            r->sealed = 1;
            break;
        }
        if (r->blocks++ == 0)
            r->oldest_ts = b.header.max_ts;
        if (r->out.len >= r->limit)
            break;
    }
    fw_segr_close(seg);
    if (r->status == CP_READ_DATA && r->out.len == 0)
        r->status = CP_READ_AGAIN;
}
