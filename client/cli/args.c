/* Command-line helpers several commands share (see cli.h). */
#include "cli.h"

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
