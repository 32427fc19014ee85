/* Command-line helpers several commands share (see cli.h). */
#include "cli.h"
#include "hex.h"

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char **fw_cli_short_category(int argc, char **argv, char **spare)
{
    char **out = calloc((size_t)argc + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    *spare = NULL;
    for (int i = 0; i < argc; i++) {
        out[i] = argv[i];
        if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++)
                out[i] = argv[i];
            break;
        }
        if (strcmp(argv[i], "-c") == 0) {
            out[i] = "--category";
            /* The next argument is the category, even one that starts with "-c". */
            if (i + 1 < argc) {
                i++;
                out[i] = argv[i];
            }
        } else if (strncmp(argv[i], "-c", 2) == 0 && *spare == NULL) {
            size_t n = strlen(argv[i]) + sizeof("--category=");
            if ((*spare = malloc(n)) != NULL) {
                snprintf(*spare, n, "--category=%s", argv[i] + 2);
                out[i] = *spare;
            }
        }
    }
    return out;
}

int fw_cli_parsed(const char *cmd, int rc, const char *err, void (*usage)(FILE *out))
{
    if (rc == FW_CONFIG_HELP) {
        usage(stdout);
        return 0;
    }
    if (rc == FW_CONFIG_VERSION) {
        printf("freeway %s\n", FW_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "freeway %s: %s\n", cmd, err);
        return 2;
    }
    return -1;
}

int fw_cli_byte_parse(const char *text)
{
    size_t n = strlen(text);
    if (n == 0)
        return -1;
    if (n == 1)
        return (unsigned char)text[0];
    if (text[0] != '\\')
        return -EINVAL; /* more than one byte (a UTF-8 character is several) */
    if (n == 2) {
        switch (text[1]) {
        case 't':
            return '\t';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case '\\':
        case '\'':
        case '"':
            return (unsigned char)text[1];
        }
        return -EINVAL;
    }
    if (text[1] != 'x' || n > 4)
        return -EINVAL;
    int v = 0;
    for (size_t i = 2; i < n; i++) {
        int d = fw_hex_digit(text[i]);
        if (d < 0)
            return -EINVAL;
        v = v * 16 + d;
    }
    return v == 0 ? -EINVAL : v;
}

void fw_cli_byte_format(int byte, char *out, size_t cap)
{
    if (byte == '\t')
        snprintf(out, cap, "'\\t'");
    else if (byte == '\n')
        snprintf(out, cap, "'\\n'");
    else if (byte == '\r')
        snprintf(out, cap, "'\\r'");
    else if (byte == '\\' || byte == '\'')
        snprintf(out, cap, "'\\%c'", byte);
    else if (byte > 0x20 && byte < 0x7f)
        snprintf(out, cap, "'%c'", byte);
    else
        snprintf(out, cap, "'\\x%02x'", (unsigned)byte & 0xff);
}
