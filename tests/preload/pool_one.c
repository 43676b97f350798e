/*
 * pool_one.c — allocates blocks of one size only (no stdio, which would
 * allocate a buffer of another size), for VMETHOD=pool under LD_PRELOAD:
 * Vmpool serves the size of the first allocation and nothing else, so a
 * program like this one is the kind that can run on it. Prints one line.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N = 2000, SIZE = 48 };

int main(void)
{
    static char* blk[N];
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < N; ++i) {
            blk[i] = malloc(SIZE);
            if (!blk[i])
                return 2;
            memset(blk[i], (i + round) & 0xff, SIZE);
        }
        for (int i = 0; i < N; ++i) {
            for (int k = 0; k < SIZE; ++k)
                if (blk[i][k] != (char)((i + round) & 0xff))
                    return 3;
            if (i % 2 == round % 2)
                free(blk[i]);
        }
        for (int i = 0; i < N; ++i)
            if (i % 2 != round % 2)
                free(blk[i]);
    }
    static const char msg[] = "pool_one: 3 rounds of 2000 blocks of 48 bytes\n";
    return write(1, msg, sizeof msg - 1) == (ssize_t)(sizeof msg - 1) ? 0 : 4;
}
