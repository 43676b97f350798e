/*
 * fig1_region.c — the paper's Figure 1 as a program: a Vmlast region over
 * Vmdcheap serves a loop whose every iteration builds some data, then drops
 * all of it at once with vmclear() and gives the memory back with
 * vmcompact(). The figure's lines are kept in order; "for(a while)" became a
 * bounded loop and the figure's "..." became a little work: a linked list of
 * strings built in the region and never freed one by one.
 */
#include <stdio.h>

#include "vmalloc.h"

typedef struct node_s {
    struct node_s* next;
    char* text;
} Node_t;

int main(void)
{
    void* b;
    size_t block_size, new_size;
    int a, bad = 0;
    Vmstat_t st;

    /* Figure 1 */
    Vmalloc_t* vm = vmopen(Vmdcheap,Vmlast,0);
    for(a = 0; a < 5; ++a)
    {   /* ... */
        block_size = 100 + (size_t)a * 1000;
        new_size = 2 * block_size;
        b = vmalloc(vm,block_size);
        b = vmresize(vm,b,new_size,1);
        vmfree(vm,b);
        /* ... */
        Node_t* list = NULL;
        for (int i = 0; i < 1000 * (a + 1); ++i) {
            char word[32];
            Node_t* n = vmalloc(vm, sizeof *n);
            snprintf(word, sizeof word, "statement %d.%d", a, i);
            n->text = vmstrdup(vm, word);
            n->next = list;
            list = n;
        }
        vmstat(vm, &st);
        printf("iteration %d: %zu blocks, %zu bytes busy, arena %zu bytes in %zu segment(s);"
               " newest: \"%s\"\n", a, st.n_busy, st.s_busy, st.extent, st.n_seg, list->text);
        vmclear(vm);
        vmcompact(vm);
        vmstat(vm, &st);
        printf("  after vmclear+vmcompact: %zu blocks busy, arena %zu bytes\n", st.n_busy,
               st.extent);
        bad |= st.n_busy != 0;
    }
    vmclose(vm);

    if (bad) {
        printf("fig1: a check failed\n");
        return 1;
    }
    printf("fig1: region opened, used for 5 iterations, cleared each time, closed\n");
    return 0;
}
