/* Hex digits, for the escapes that text formats spell with them (\xHH, \uHHHH). */
#ifndef FW_HEX_H
#define FW_HEX_H

/* The value of hex digit c (either case), or -1 if c is none. */
static inline int fw_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
