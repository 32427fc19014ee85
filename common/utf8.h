/* UTF-8 well-formedness, for text that must be text (JSON strings, metric labels). */
#ifndef FW_UTF8_H
#define FW_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is well-formed UTF-8: no overlongs, surrogates or code points past U+10FFFF. */
int fw_utf8_valid(const void *s, size_t len);

/*
 * The length (1..4) of the well-formed character that starts s[0..len), or
 * 0 if none does there (a stray or overlong byte, a surrogate, a sequence
 * cut short by len). A writer that must emit text takes one byte as U+FFFD
 * on 0 and goes on with the next.
 */
size_t fw_utf8_char_len(const void *s, size_t len);

/*
 * The length of the longest prefix of s[0..len) of at most max bytes that
 * does not end inside a well-formed character, for cutting text to fit a
 * buffer (bytes that are no character may be cut anywhere: each stands
 * alone).
 */
size_t fw_utf8_prefix(const void *s, size_t len, size_t max);

#endif
