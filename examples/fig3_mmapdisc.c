/*
 * fig3_mmapdisc.c — the paper's Figure 3 as a program: Vmcmmmap_t, a
 * discipline extended by embedding Vmdisc_t, made into a working discipline
 * over a memory-mapped file. The file is mapped (shared) when the region
 * opens (VM_OPEN) and unmapped after it closes (VM_ENDCLOSE); segments are
 * cut from the mapping one after the other, and the file grows with them.
 * The region's own handle and bookkeeping live inside the file too, and what
 * the program writes into its blocks can be read back from the file.
 */
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmalloc.h"

/* Figure 3, with "whatever else" filled in. */
typedef struct _vmcmmmap_s
{   Vmdisc_t  disc;      /* Vmalloc discipline */
    int      fd;        /* file descriptor   */
    char*    base;      /* the mapping of the file */
    size_t   size;      /* bytes mapped: the most the region can have */
    size_t   used;      /* [base, base + used) is handed out as segments */
    size_t   filesize;  /* the file's length: grown before memory is handed out */
} Vmcmmmap_t;

/* Grow the file so that [0, end) is backed; a mapped page past the end of
 * the file cannot be touched. */
static int mm_back(Vmcmmmap_t* mm, size_t end)
{
    if (end <= mm->filesize)
        return 0;
    if (ftruncate(mm->fd, (off_t)end) != 0)
        return -1;
    mm->filesize = end;
    return 0;
}

static void* mmapmem(Vmalloc_t* vm, void* addr, size_t csz, size_t nsz, Vmdisc_t* disc)
{
    Vmcmmmap_t* mm = (Vmcmmmap_t*)disc; /* the cast Figure 3 is about */
    char* a = addr;
    (void)vm;
    if (csz == 0) { /* a new segment at the end of what is used */
        if (nsz > mm->size - mm->used || mm_back(mm, mm->used + nsz) != 0)
            return NULL;
        a = mm->base + mm->used;
        mm->used += nsz;
        return a;
    }
    int top = a + csz == mm->base + mm->used;
    if (nsz == 0) { /* released; the file keeps its content */
        if (top)
            mm->used -= csz;
        return addr;
    }
    /* Resize in place: only the last segment can, up to the mapping's end. */
    if (!top || nsz > mm->size - (size_t)(a - mm->base) ||
        mm_back(mm, (size_t)(a - mm->base) + nsz) != 0)
        return NULL;
    mm->used = (size_t)(a - mm->base) + nsz;
    return addr;
}

static int mmapexcept(Vmalloc_t* vm, int type, void* obj, Vmdisc_t* disc)
{
    Vmcmmmap_t* mm = (Vmcmmmap_t*)disc;
    (void)vm;
    (void)obj;
    if (type == VM_OPEN) { /* map the file before the region is made in it */
        void* p = mmap(NULL, mm->size, PROT_READ | PROT_WRITE, MAP_SHARED, mm->fd, 0);
        if (p == MAP_FAILED)
            return -1;
        mm->base = p;
        mm->used = 0;
    } else if (type == VM_ENDCLOSE) { /* the region is gone: flush and unmap */
        msync(mm->base, mm->size, MS_SYNC);
        munmap(mm->base, mm->size);
        mm->base = NULL;
    }
    return 0;
}

int main(void)
{
    char path[] = "/tmp/vmalloc-fig3-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("fig3: mkstemp");
        return 1;
    }
    Vmcmmmap_t mmapdisc = {{mmapmem, mmapexcept, 0}, fd, NULL, 64 << 20, 0, 0};
    Vmdisc_t* disc = (Vmdisc_t*)&mmapdisc; /* and the cast the other way */
    int bad = 0;

    Vmalloc_t* vm = vmopen(disc, Vmbest, 0);
    if (!vm) {
        printf("fig3: vmopen over the mapped file failed\n");
        unlink(path);
        return 1;
    }
    char* base = mmapdisc.base;
    int inside = (char*)vm >= base && (char*)vm < base + mmapdisc.used;
    printf("region handle at file offset %ld (%s the mapping)\n", (long)((char*)vm - base),
           inside ? "inside" : "OUTSIDE");
    bad |= !inside;

    /* Some records and a string, written through the region. */
    const char* msg = "written through a Vmbest region into a mapped file";
    char* s = vmstrdup(vm, msg);
    long* rec[50];
    for (int i = 0; i < 50; ++i) {
        rec[i] = vmalloc(vm, 2000 * sizeof(long));
        for (int j = 0; j < 2000; ++j)
            rec[i][j] = (long)i * 2000 + j;
    }
    long soff = (long)(s - base), roff = (long)((char*)rec[49] - base);
    Vmstat_t st;
    vmstat(vm, &st);
    printf("%zu blocks, %zu bytes busy, arena %zu bytes in %zu segment(s); file is %zu bytes\n",
           st.n_busy, st.s_busy, st.extent, st.n_seg, mmapdisc.filesize);
    bad |= s == NULL || rec[49] == NULL || mmapdisc.filesize < st.extent;

    vmclose(vm); /* VM_ENDCLOSE unmaps: from here on only the file has the data */
    bad |= mmapdisc.base != NULL;

    char buf[128] = {0};
    long last[2000];
    int okmsg = pread(fd, buf, strlen(msg) + 1, soff) == (ssize_t)strlen(msg) + 1 &&
                strcmp(buf, msg) == 0;
    int okrec = pread(fd, last, sizeof last, roff) == (ssize_t)sizeof last &&
                last[0] == 49 * 2000 && last[1999] == 49 * 2000 + 1999;
    printf("read back from the file at offset %ld: \"%s\" (%s)\n", soff, buf,
           okmsg ? "matches" : "DIFFERS");
    printf("record 49 at offset %ld: %s\n", roff, okrec ? "matches" : "DIFFERS");
    bad |= !okmsg || !okrec;
    close(fd);
    unlink(path);

    if (bad) {
        printf("fig3: a check failed\n");
        return 1;
    }
    printf("fig3: the region lived in the mapped file and its data is in the file\n");
    return 0;
}
