/*
 * fwbench lz4: the compression yardstick. Builds blocks from the input the
 * way a producer does (fw_block_builder: record headers, 256 KiB batches),
 * then times LZ4_compress_default and LZ4_decompress_safe on their raw
 * payloads, each for at least --seconds, on one core. MB/s are of raw
 * (uncompressed) bytes, so they compare with ingest's payload MB/s.
 */
#include "block.h"
#include "fwbench.h"

#include <getopt.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

typedef struct raw_block_s {
    uint8_t *data;
    size_t len;
} raw_block_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: fwbench lz4 --input FILE [--batch-bytes SIZE] [--seconds S]\n");
}

int fwb_cmd_lz4(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'},
        {"batch-bytes", required_argument, NULL, 'b'},
        {"seconds", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *input = NULL;
    int64_t batch = 256 << 10;
    double seconds = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            input = optarg;
            break;
        case 'b':
            batch = fwb_parse_size(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (input == NULL || batch <= 0 || seconds <= 0) {
        usage(stderr);
        return 2;
    }
    fwb_input_t in;
    int rc = fwb_input_open(&in, input);
    if (rc < 0) {
        fprintf(stderr, "fwbench lz4: %s: %s\n", input, fw_strerror(rc));
        return 1;
    }

    /* Up to 64 MiB of raw block payloads, built as a producer builds them. */
    size_t nblocks = 0, cap = (64u << 20) / (size_t)batch + 1, raw_total = 0;
    raw_block_t *blocks = calloc(cap, sizeof(*blocks));
    fw_block_builder_t b;
    fw_block_builder_init(&b, FW_RECORD_MAX_HARD);
    for (size_t i = 0; i < in.count && nblocks < cap; i++) {
        fw_block_builder_add(&b, 0, NULL, 0, 0, in.data + in.offsets[i], in.lengths[i]);
        size_t next = i + 1 < in.count ? in.lengths[i + 1] + 16u : 0;
        if (fw_block_builder_raw_len(&b) + next <= (size_t)batch && i + 1 < in.count)
            continue;
        raw_block_t *rb = &blocks[nblocks++];
        rb->len = fw_block_builder_raw_len(&b);
        rb->data = malloc(rb->len);
        memcpy(rb->data, b.raw.data, rb->len);
        raw_total += rb->len;
        const uint8_t *blk;
        size_t blen;
        fw_block_builder_finish(&b, FW_CODEC_NONE, 1, nblocks, &blk, &blen);
    }
    fw_block_builder_free(&b);

    int bound = LZ4_compressBound((int)batch);
    char *packed = malloc((size_t)bound * nblocks);
    int *packed_len = calloc(nblocks, sizeof(int));
    char *out = malloc((size_t)batch);
    size_t packed_total = 0;

    uint64_t bytes = 0;
    int64_t t0 = fwb_now_ns(), t1;
    do {
        for (size_t i = 0; i < nblocks; i++) {
            packed_len[i] =
                LZ4_compress_default((const char *)blocks[i].data, packed + (size_t)bound * i,
                                     (int)blocks[i].len, bound);
            bytes += blocks[i].len;
        }
        t1 = fwb_now_ns();
    } while ((double)(t1 - t0) / 1e9 < seconds);
    double compress_mbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;
    for (size_t i = 0; i < nblocks; i++)
        packed_total += (size_t)packed_len[i];

    bytes = 0;
    int bad = 0;
    t0 = fwb_now_ns();
    do {
        for (size_t i = 0; i < nblocks; i++) {
            int got =
                LZ4_decompress_safe(packed + (size_t)bound * i, out, packed_len[i], (int)batch);
            bad |= got != (int)blocks[i].len;
            bytes += blocks[i].len;
        }
        t1 = fwb_now_ns();
    } while ((double)(t1 - t0) / 1e9 < seconds);
    double decompress_mbps = (double)bytes / ((double)(t1 - t0) / 1e9) / 1e6;

    printf("{\"blocks\": %zu, \"raw_bytes\": %zu, \"batch_bytes\": %lld, \"ratio\": %.4f, "
           "\"compress_mb_per_s\": %.1f, \"decompress_mb_per_s\": %.1f, \"lz4_version\": \"%s\"}\n",
           nblocks, raw_total, (long long)batch,
           raw_total ? (double)packed_total / (double)raw_total : 0, compress_mbps, decompress_mbps,
           LZ4_versionString());
    for (size_t i = 0; i < nblocks; i++)
        free(blocks[i].data);
    free(blocks);
    free(packed);
    free(packed_len);
    free(out);
    fwb_input_close(&in);
    return bad ? 1 : 0;
}
