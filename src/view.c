/*
 * view.c — vmview(): a region's arena as an SVG picture, like the paper's
 * Figures 6 and 7. Each segment of the region is drawn as consecutive rows
 * of `row` bytes: a thin line for the segment's memory, a thick bar for each
 * busy block on it, a colour per region.
 *
 * The picture is made in one pass per region with the region locked: the
 * segment table gives the segments in address order and the method's walk
 * the busy blocks in address order, so each block's row is found by moving
 * forward through the segments. Nothing is allocated (the program's malloc
 * may be this library, and the region is locked): the SVG goes out through a
 * small buffer with write(). Cost: O(segments + busy blocks + rows).
 */
#include "vmhdr.h"

#define VIEW_WIDTH 1024 /* pixels for one row */
#define VIEW_ROWH 14    /* pixels per row */

static const char* view_palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                     "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};

typedef struct view_s {
    int fd, failed;
    char buf[4096];
    size_t len;
    size_t row;       /* bytes per row */
    long y;           /* rows drawn so far, all regions */
    const char* colour;
    /* walking one region: the segment the blocks are in now, and its first row */
    Vmalloc_t* vm;
    size_t seg;
    long segy;
} View_t;

static void view_flush(View_t* v)
{
    if (v->len && vm_os_write(v->fd, v->buf, v->len) < 0)
        v->failed = 1;
    v->len = 0;
}

static void view_str(View_t* v, const char* s)
{
    for (; *s; ++s) {
        if (v->len == sizeof v->buf)
            view_flush(v);
        v->buf[v->len++] = *s;
    }
}

static void view_num(View_t* v, size_t n)
{
    char tmp[32];
    *vm_fmt_dec(tmp, n) = 0;
    view_str(v, tmp);
}

static void view_hex(View_t* v, uintptr_t n)
{
    char tmp[32];
    *vm_fmt_hex(tmp, n) = 0;
    view_str(v, tmp);
}

static size_t view_rows(const View_t* v, const Vmseg_t* seg)
{
    return ((size_t)(seg->end - seg->data) + v->row - 1) / v->row;
}

/* The segment's label and one thin line per row of its memory. */
static void view_segment(View_t* v, const Vmseg_t* seg)
{
    v->y += 1;
    view_str(v, "<text x=\"10\" y=\"");
    view_num(v, (size_t)(v->y * VIEW_ROWH + 30));
    view_str(v, "\">region ");
    view_hex(v, (uintptr_t)seg->vm);
    view_str(v, " segment ");
    view_hex(v, (uintptr_t)seg->addr);
    view_str(v, ", ");
    view_num(v, seg->size);
    view_str(v, " bytes</text>\n");
    size_t n = view_rows(v, seg);
    for (size_t r = 0; r < n; ++r) {
        size_t len = r + 1 < n ? v->row : (size_t)(seg->end - seg->data) - r * v->row;
        size_t y = (size_t)(v->y + (long)r + 1) * VIEW_ROWH + 30;
        view_str(v, "<line x1=\"10\" x2=\"");
        view_num(v, 10 + len * VIEW_WIDTH / v->row);
        view_str(v, "\" y1=\"");
        view_num(v, y);
        view_str(v, "\" y2=\"");
        view_num(v, y);
        view_str(v, "\" stroke=\"");
        view_str(v, v->colour);
        view_str(v, "\"/>\n");
    }
}

/* A busy block: a thick bar on each row it covers. Blocks come in address
 * order; the segments before the block's are passed. */
static int view_block(Vmalloc_t* vm, void* block, size_t size, Vmdisc_t* disc, void* arg)
{
    (void)disc;
    View_t* v = arg;
    char* a = block;
    while (v->seg < vm->nsegs && a >= vm->segs[v->seg]->end) {
        v->segy += (long)view_rows(v, vm->segs[v->seg]) + 1;
        v->seg += 1;
    }
    if (v->seg == vm->nsegs || a < vm->segs[v->seg]->data)
        return 0; /* not in a drawn segment (cannot happen for a sound region) */
    const Vmseg_t* seg = vm->segs[v->seg];
    char* end = a + size < seg->end ? a + size : seg->end;
    while (a < end) {
        size_t off = (size_t)(a - seg->data), r = off / v->row, col = off % v->row;
        size_t len = v->row - col < (size_t)(end - a) ? v->row - col : (size_t)(end - a);
        size_t w = len * VIEW_WIDTH / v->row;
        view_str(v, "<rect x=\"");
        view_num(v, 10 + col * VIEW_WIDTH / v->row);
        view_str(v, "\" y=\"");
        view_num(v, (size_t)(v->segy + 1 + (long)r + 1) * VIEW_ROWH + 30 - 5);
        view_str(v, "\" width=\"");
        view_num(v, w ? w : 1);
        view_str(v, "\" height=\"10\" fill=\"");
        view_str(v, v->colour);
        view_str(v, "\"/>\n");
        a += len;
    }
    return 0;
}

/* Draw one region: its segments, then its busy blocks over them. Takes the
 * region's lock, as vmwalk does. */
static void view_region(View_t* v, Vmalloc_t* vm, int index)
{
    int locked = !(vm->flags & VM_TRUST);
    if (locked)
        pthread_mutex_lock(&vm->lock);
    v->colour = view_palette[index % (int)(sizeof view_palette / sizeof view_palette[0])];
    v->vm = vm;
    v->seg = 0;
    v->segy = v->y;
    for (size_t i = 0; i < vm->nsegs; ++i) {
        view_segment(v, vm->segs[i]);
        v->y += (long)view_rows(v, vm->segs[i]);
    }
    (void)vm->meth->walkf(vm, view_block, v);
    if (locked)
        pthread_mutex_unlock(&vm->lock);
}

int vmview(Vmalloc_t* vm, int fd, size_t row)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    View_t v;
    memset(&v, 0, sizeof v);
    v.fd = fd;
    v.row = row ? vm_align_up(row < 64 ? 64 : row, 16) : 8192;
    /* The height comes first in the file: count the rows. */
    size_t rows = 0;
    Vmalloc_t* heap = vm_heap_region();
    pthread_mutex_lock(&vm_list_lock);
    for (Vmalloc_t* r = vm ? vm : heap; r; r = vm ? NULL : (r == heap ? vm_list : r->next)) {
        int locked = !(r->flags & VM_TRUST);
        if (locked)
            pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->nsegs; ++i)
            rows += view_rows(&v, r->segs[i]) + 1;
        if (locked)
            pthread_mutex_unlock(&r->lock);
    }
    view_str(&v, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"");
    view_num(&v, VIEW_WIDTH + 20);
    view_str(&v, "\" height=\"");
    view_num(&v, (rows + 2) * VIEW_ROWH + 40);
    view_str(&v, "\" font-family=\"monospace\" font-size=\"11\">\n"
                 "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                 "<text x=\"10\" y=\"16\">arena: one row per ");
    view_num(&v, v.row);
    view_str(&v, " bytes; busy blocks thick, free space thin</text>\n");
    int index = 0;
    for (Vmalloc_t* r = vm ? vm : heap; r; r = vm ? NULL : (r == heap ? vm_list : r->next))
        view_region(&v, r, index++);
    pthread_mutex_unlock(&vm_list_lock);
    view_str(&v, "</svg>\n");
    view_flush(&v);
    if (v.failed)
        return -1;
    return 0;
}
