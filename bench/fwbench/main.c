/* fwbench's entry: picks the subcommand (see fwbench.h). */
#include "fwbench.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: fwbench produce|latency|consume|lz4 [OPTIONS]\n"
                 "       fwbench SUBCOMMAND --help\n\n"
                 "The load generator of bench/ (bench/README.md). Each subcommand\n"
                 "prints its figures as one JSON object on stdout.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "produce") == 0)
        return fwb_cmd_produce(argc - 1, argv + 1);
    if (strcmp(cmd, "latency") == 0)
        return fwb_cmd_latency(argc - 1, argv + 1);
    if (strcmp(cmd, "consume") == 0)
        return fwb_cmd_consume(argc - 1, argv + 1);
    if (strcmp(cmd, "lz4") == 0)
        return fwb_cmd_lz4(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "fwbench: unknown subcommand '%s'\n", cmd);
    usage(stderr);
    return 2;
}
