/* JSON output shared by the commands (see cli.h). */
#include "cli.h"

#include <stdint.h>

void fw_cli_json_string(FILE *out, const void *text, size_t len)
{
    const uint8_t *s = text;
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = s[i];
        switch (ch) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\b':
            fputs("\\b", out);
            break;
        case '\f':
            fputs("\\f", out);
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(out, "\\u%04x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}
