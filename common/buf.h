/*
 * fw_buf_t: a growable byte buffer. The owner of the struct owns data; free
 * it with fw_buf_free. Growth is bounded by the caller, never by input.
 */
#ifndef FW_BUF_H
#define FW_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct fw_buf_s {
    uint8_t *data;
    size_t len;
    size_t cap;
} fw_buf_t;

#define FW_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Makes room for at least `extra` more bytes; 0 or -ENOMEM. */
int fw_buf_reserve(fw_buf_t *b, size_t extra);
/* Appends n bytes; 0 or -ENOMEM. */
int fw_buf_append(fw_buf_t *b, const void *p, size_t n);
void fw_buf_reset(fw_buf_t *b);
void fw_buf_free(fw_buf_t *b);

#endif
