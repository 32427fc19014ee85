/* UTF-8 well-formedness (see utf8.h). */
#include "utf8.h"

#include <stdint.h>

size_t fw_utf8_char_len(const void *buf, size_t len)
{
    const uint8_t *s = buf;
    if (len == 0)
        return 0;
    uint8_t b = s[0];
    size_t n;
    uint32_t cp;
    if (b < 0x80)
        return 1;
    if ((b & 0xe0) == 0xc0) {
        n = 2;
        cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
        n = 3;
        cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
        n = 4;
        cp = b & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int fw_utf8_valid(const void *buf, size_t len)
{
    const uint8_t *s = buf;
    for (size_t i = 0; i < len;) {
        size_t n = fw_utf8_char_len(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

size_t fw_utf8_prefix(const void *buf, size_t len, size_t max)
{
    const uint8_t *s = buf;
    if (max >= len)
        return len;
    size_t i = 0;
    while (i < max) {
        size_t n = fw_utf8_char_len(s + i, len - i);
        if (n == 0)
            n = 1;
        if (i + n > max)
            break;
        i += n;
    }
    return i;
}
