/* synth_fragment N — the paper's Figure 4 (the "fragment" workload): one big
 * block grown by 32 bytes at a time while 24-byte blocks are allocated
 * between the resizes, so a naive allocator cannot extend the big block in
 * place. N defaults to 10000 (the paper's count). Run it under
 * LD_PRELOAD=libvmalloc.so VMTRACE=... to record the trace (tools/record.sh).
 * Prints one checksum line. The trace holds only the pattern's calls, as in
 * the paper's Table 1 (10,001 allocations, 0 frees, 10,000 resizes): the
 * pointer array is static and the line is written without stdio's buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAXN = 1 << 20 };
static char *small[MAXN];

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 10000;
    if (count <= 0 || count > MAXN) {
        fprintf(stderr, "usage: synth_fragment [N in 1..%d]\n", MAXN);
        return 2;
    }
    size_t size = 32;
    char *big = malloc(size);
    if (!big) return 1;
    memset(big, 1, size);
    unsigned long sum = 0;
    for (long n = 0; n < count; ++n) {
        small[n] = malloc(24);
        if (!small[n]) return 1;
        memset(small[n], (int)(n & 0xff), 24);
        size += 32;
        char *nb = realloc(big, size);
        if (!nb) return 1;
        big = nb;
        big[size - 1] = (char)n;
        sum = sum * 31 + (unsigned char)big[size - 33] + (unsigned char)small[n][0];
    }
    char line[64];
    int len = snprintf(line, sizeof line, "fragment %ld %lu\n", count, sum);
    if (write(1, line, (size_t)len) != len) return 1;
    /* The paper's program exits without freeing: neither do we (the trace
     * has 0 frees, as in Table 1). */
    return 0;
}
