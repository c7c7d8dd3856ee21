/*
 * renamer: a statically linked writer for NameTrapIT (no libc of the system, so nothing
 * preloaded into it can see its calls: only the kernel can).
 *
 *   renamer TARGET SAVES ROTATIONS UNLINKS TRUTH [--names]
 *
 * 1. SAVES atomic saves: write TARGET.tmp, fsync, close, rename it onto TARGET, taking turns
 *    with rename(2), renameat(2) and renameat2(2) (flags 0, by raw syscall); read TARGET back.
 * 2. ROTATIONS: rename(TARGET, TARGET~) (the same three calls in turn), at once
 *    open(TARGET, O_RDWR|O_CREAT|O_TRUNC), write, close; read it back.
 * 3. UNLINKS: unlink(TARGET) / unlinkat(AT_FDCWD, TARGET, 0) in turn, then re-create as above.
 *
 * Every checkpoint completed is appended to TRUTH as "TAG I SIZE -" (the content is
 * payload(TAG, I, SIZE), as in fsops.py and TestSupport.payload). Read-backs that differ are
 * counted; with --names, the names are checked right after each rename away and unlink too
 * (TARGET~ a regular file with the previous content, TARGET not there for stat()). Prints
 * "mismatches=N" and exits 1 when N > 0.
 *
 * Build: gcc -static -O2 -o renamer renamer.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int mismatches;
static int names;
static const char *truth;

static void bad(const char *fmt, const char *a, int i) {
    mismatches++;
    fprintf(stderr, "MISMATCH: ");
    fprintf(stderr, fmt, a, i);
    fprintf(stderr, "\n");
}

static size_t size_of(int i) { return 3000 + (size_t)(i * 7919) % 60000; }

/* payload(tag, i, size): "tag:i:size\n" then one fill letter up to size. */
static char *payload(const char *tag, int i, size_t size, size_t *len) {
    char head[128];
    int h = snprintf(head, sizeof head, "%s:%d:%zu\n", tag, i, size);
    int sum = 0;
    for (const char *p = tag; *p; p++) sum += (unsigned char)*p;
    size_t n = size < (size_t)h ? (size_t)h : size;
    char *buf = malloc(n);
    if (!buf) { perror("malloc"); exit(2); }
    memset(buf, 65 + (i * 7 + sum) % 26, n);
    memcpy(buf, head, (size_t)h < n ? (size_t)h : n);
    *len = n;
    return buf;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "renamer: %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

static void write_file(const char *path, const char *buf, size_t len, int flags, int do_fsync) {
    int fd = open(path, flags, 0644);
    if (fd < 0) die("open", path);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0) die("write", path);
        off += (size_t)w;
    }
    if (do_fsync && fsync(fd) != 0) die("fsync", path);
    if (close(fd) != 0) die("close", path);
}

/* Reads PATH whole; returns a malloc'd buffer (NULL if it cannot be opened). */
static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap) buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) die("read", path);
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

static void expect(const char *path, const char *want, size_t wlen, const char *what, int i) {
    size_t len;
    char *got = read_file(path, &len);
    if (!got) { bad("%s %d: cannot read the file back", what, i); return; }
    if (len != wlen || memcmp(got, want, len) != 0) bad("%s %d: the file read back is not what was written", what, i);
    free(got);
}

static void log_truth(const char *tag, int i, size_t len) {
    FILE *f = fopen(truth, "a");
    if (!f) die("open", truth);
    fprintf(f, "%s %d %zu -\n", tag, i, len);
    if (fclose(f) != 0) die("close", truth);
}

/* rename(2), renameat(2) or renameat2(2), in turn. */
static int do_rename(int k, const char *from, const char *to) {
    switch (k % 3) {
    case 0: return rename(from, to);
    case 1: return renameat(AT_FDCWD, from, AT_FDCWD, to);
    default: return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 0);
    }
}

static void renamed_away(const char *old, const char *new, const char *prev, size_t plen, int i) {
    if (!names) return;
    struct stat st;
    if (lstat(new, &st) != 0) bad("rotation %s %d: the renamed file is missing", "", i);
    else if (!S_ISREG(st.st_mode)) bad("rotation %s %d: the renamed file is not a regular file", "", i);
    if (prev) expect(new, prev, plen, "rotation: renamed file", i);
    if (stat(old, &st) == 0) bad("rotation %s %d: the target still exists right after the rename", "", i);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: renamer TARGET SAVES ROTATIONS UNLINKS TRUTH [--names]\n");
        return 2;
    }
    const char *target = argv[1];
    int saves = atoi(argv[2]), rotations = atoi(argv[3]), unlinks = atoi(argv[4]);
    truth = argv[5];
    names = argc > 6 && strcmp(argv[6], "--names") == 0;
    char tmp[4096], bak[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", target);
    snprintf(bak, sizeof bak, "%s~", target);
    size_t plen = 0;
    char *prev = read_file(target, &plen);

    for (int i = 0; i < saves; i++) {
        size_t len;
        char *buf = payload("csave", i, size_of(i), &len);
        write_file(tmp, buf, len, O_WRONLY | O_CREAT | O_TRUNC, 1);
        if (do_rename(i, tmp, target) != 0) die("rename onto", target);
        log_truth("csave", i, len);
        expect(target, buf, len, "save read back", i);
        free(prev);
        prev = buf;
        plen = len;
    }
    for (int i = 0; i < rotations; i++) {
        if (do_rename(i, target, bak) != 0) die("rename away", target);
        renamed_away(target, bak, prev, plen, i);
        size_t len;
        char *buf = payload("crot", i, size_of(i), &len);
        write_file(target, buf, len, O_RDWR | O_CREAT | O_TRUNC, 0);
        log_truth("crot", i, len);
        expect(target, buf, len, "rotation read back", i);
        free(prev);
        prev = buf;
        plen = len;
    }
    for (int i = 0; i < unlinks; i++) {
        int r = (i % 2) ? unlinkat(AT_FDCWD, target, 0) : unlink(target);
        if (r != 0) die("unlink", target);
        struct stat st;
        if (names && stat(target, &st) == 0) bad("unlink %s %d: the target still exists right after unlink", "", i);
        size_t len;
        char *buf = payload("cre", i, size_of(i), &len);
        write_file(target, buf, len, O_RDWR | O_CREAT | O_TRUNC, 0);
        log_truth("cre", i, len);
        expect(target, buf, len, "re-create read back", i);
        free(prev);
        prev = buf;
        plen = len;
    }
    free(prev);
    printf("mismatches=%d\n", mismatches);
    return mismatches ? 1 : 0;
}
