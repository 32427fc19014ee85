/* UTF-8 well-formedness, for text that must be text (JSON strings, metric labels). */
#ifndef FW_UTF8_H
#define FW_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is well-formed UTF-8: no overlongs, surrogates or code points past U+10FFFF. */
int fw_utf8_valid(const void *s, size_t len);

#endif
