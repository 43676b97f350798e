/*
 * exec_chain.c — for the preload tests: allocates a block of 77777 bytes,
 * then (argument "first") executes itself with the argument "second", which
 * allocates 88888 bytes. Both images are the same process, so with
 * VMTRACE=dir/trace.%p both write to one file: the first image's lines must
 * have been written out before the exec and must survive the second image
 * opening the file. Prints one line from the second image.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void* volatile keep;

int main(int argc, char** argv)
{
    if (argc > 1 && strcmp(argv[1], "first") == 0) {
        keep = malloc(11); /* through a volatile: the compiler may not drop the pair */
        free(keep);
        keep = malloc(77777);
        char* args[] = {argv[0], "second", NULL};
        execv("/proc/self/exe", args);
        perror("execv");
        return 2;
    }
    keep = malloc(11);
    free(keep);
    keep = malloc(88888);
    printf("exec_chain: pid %s\n", keep ? "same" : "none");
    return 0;
}
