/*
 * vfsbench: the small measuring programs behind bench/run.sh (compiled at run time with gcc).
 *
 *   vfsbench seqwrite  FILE MIB BLOCK_KIB [fsync|nofsync] [SEED]
 *       open(O_TRUNC), write MIB MiB in BLOCK_KIB blocks, optionally fsync, close. SEED (default
 *       42) makes the content: back-to-back rewrites with different seeds are different versions.
 *       Prints JSON: bytes, write_s (all write() calls), fsync_s, close_s, total_s.
 *   vfsbench seqread   FILE BLOCK_KIB
 *       read FILE to EOF in BLOCK_KIB blocks. Prints JSON: bytes, read_s.
 *   vfsbench closelat  FILE MIB COUNT [PAUSE_MS]
 *       COUNT times: open(O_WRONLY|O_CREAT|O_TRUNC), write MIB MiB (1 MiB writes), close(), then
 *       sleep PAUSE_MS (default 0: back to back). Prints JSON arrays of open, write and close
 *       latencies in microseconds.
 *   vfsbench rewriters FILE WRITERS REWRITES SIZE CHUNK LOCKFILE
 *       Forks WRITERS processes; each rewrites FILE REWRITES times as fast as it can:
 *       flock(LOCKFILE) ; open(O_WRONLY|O_CREAT|O_TRUNC) ; write SIZE bytes in CHUNK-byte writes ;
 *       close() ; unlock. The lock serialises the rewrites (as in a program where one process at
 *       a time owns the file), so every complete rewrite is a well-defined content: the header
 *       names writer and sequence number, the payload is derived from them, a trailer repeats them.
 *       Prints JSON: completed rewrites (close() returned 0 after all writes) per writer, errors, wall_s.
 *   vfsbench loaded    FILE PROCS REWRITES KIB BURN_MS LOCKFILE
 *       A job that uses every core: forks PROCS processes; each does REWRITES/PROCS times: burn
 *       BURN_MS of its own CPU time (a compute step), then flock(LOCKFILE), rewrite FILE with KIB KiB
 *       (open O_TRUNC, 64 KiB writes, close), unlock. Prints JSON: rewrites done, wall_s, and the
 *       processes' CPU (cpu_s, from getrusage of the children).
 *   vfsbench dropcache FILE
 *       posix_fadvise(DONTNEED) on FILE: drops the page cache of that one inode (through a FUSE
 *       mount: the mount's pages, not the backing file's). Prints nothing.
 *   vfsbench openloop  FILE COUNT BLOCK_KIB
 *       COUNT times: open(O_RDONLY), read FILE to EOF in BLOCK_KIB blocks, close(). Prints JSON:
 *       count, bytes (all iterations), total_s, and the median and p99 of one iteration in us.
 *   vfsbench verify    FILE...
 *       For each file prints "OK w seq" when it is exactly one complete rewrite (byte for byte),
 *       else "TORN <reason>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "vfsbench: %s %s: %s\n", what, path ? path : "", strerror(errno));
    exit(2);
}

static int write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fill_pattern(char *buf, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(buf + i, &x, k);
    }
}

/* ---- sequential write / read ------------------------------------------------------------- */

static int cmd_seqwrite(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: seqwrite FILE MIB BLOCK_KIB [fsync|nofsync] [SEED]\n"); return 2; }
    const char *path = argv[2];
    long mib = atol(argv[3]);
    size_t block = (size_t)atol(argv[4]) * 1024;
    int do_fsync = !(argc > 5 && strcmp(argv[5], "nofsync") == 0);
    uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 42;
    char *buf = aligned_alloc(4096, block);
    fill_pattern(buf, block, seed);
    long long total = (long long)mib << 20;
    double t0 = now_s();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open", path);
    for (long long done = 0; done < total; done += (long long)block) {
        buf[0] = (char)(done >> 20);  /* not all blocks identical */
        if (write_all(fd, buf, block) < 0) die("write", path);
    }
    double t1 = now_s();
    if (do_fsync && fsync(fd) < 0) die("fsync", path);
    double t2 = now_s();
    if (close(fd) < 0) die("close", path);
    double t3 = now_s();
    printf("{\"bytes\":%lld,\"write_s\":%.6f,\"fsync_s\":%.6f,\"close_s\":%.6f,\"total_s\":%.6f}\n",
           total, t1 - t0, t2 - t1, t3 - t2, t3 - t0);
    return 0;
}

static int cmd_seqread(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: seqread FILE BLOCK_KIB\n"); return 2; }
    const char *path = argv[2];
    size_t block = (size_t)atol(argv[3]) * 1024;
    char *buf = aligned_alloc(4096, block);
    double t0 = now_s();
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open", path);
    long long total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, block);
        if (r < 0) { if (errno == EINTR) continue; die("read", path); }
        if (r == 0) break;
        total += r;
    }
    close(fd);
    double t1 = now_s();
    printf("{\"bytes\":%lld,\"read_s\":%.6f}\n", total, t1 - t0);
    return 0;
}

static int cmd_dropcache(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: dropcache FILE\n"); return 2; }
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) die("open", argv[2]);
    int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (e) { errno = e; die("posix_fadvise", argv[2]); }
    close(fd);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_openloop(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: openloop FILE COUNT BLOCK_KIB\n"); return 2; }
    const char *path = argv[2];
    int count = atoi(argv[3]);
    size_t block = (size_t)atol(argv[4]) * 1024;
    if (count < 1) { fprintf(stderr, "openloop: COUNT must be >= 1\n"); return 2; }
    char *buf = aligned_alloc(4096, block);
    double *lat = calloc(count, sizeof(double));
    long long total = 0;
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        double a = now_s();
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open", path);
        for (;;) {
            ssize_t r = read(fd, buf, block);
            if (r < 0) { if (errno == EINTR) continue; die("read", path); }
            if (r == 0) break;
            total += r;
        }
        if (close(fd) < 0) die("close", path);
        lat[i] = (now_s() - a) * 1e6;
    }
    double t1 = now_s();
    qsort(lat, count, sizeof(double), cmp_double);
    int p99 = (int)((count * 99 + 99) / 100) - 1;
    printf("{\"count\":%d,\"bytes\":%lld,\"total_s\":%.6f,\"median_us\":%.2f,\"p99_us\":%.2f}\n",
           count, total, t1 - t0, lat[count / 2], lat[p99]);
    return 0;
}

/* ---- close() latency --------------------------------------------------------------------- */

static int cmd_closelat(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: closelat FILE MIB COUNT [PAUSE_MS]\n"); return 2; }
    const char *path = argv[2];
    long mib = atol(argv[3]);
    int count = atoi(argv[4]);
    long pause_ms = argc > 5 ? atol(argv[5]) : 0;
    size_t block = 1 << 20;
    char *buf = aligned_alloc(4096, block);
    fill_pattern(buf, block, 7);
    double *op = calloc(count, sizeof(double)), *wr = calloc(count, sizeof(double)), *cl = calloc(count, sizeof(double));
    for (int i = 0; i < count; i++) {
        double t0 = now_s();
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open", path);
        double t1 = now_s();
        for (long m = 0; m < mib; m++) {
            buf[0] = (char)i; buf[1] = (char)m;
            if (write_all(fd, buf, block) < 0) die("write", path);
        }
        double t2 = now_s();
        if (close(fd) < 0) die("close", path);
        double t3 = now_s();
        op[i] = (t1 - t0) * 1e6; wr[i] = (t2 - t1) * 1e6; cl[i] = (t3 - t2) * 1e6;
        if (pause_ms > 0) {
            struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
        }
    }
    const char *names[3] = {"open_us", "write_us", "close_us"};
    double *arrs[3] = {op, wr, cl};
    printf("{\"mib\":%ld,\"count\":%d,\"pause_ms\":%ld", mib, count, pause_ms);
    for (int a = 0; a < 3; a++) {
        printf(",\"%s\":[", names[a]);
        for (int i = 0; i < count; i++) printf("%s%.1f", i ? "," : "", arrs[a][i]);
        printf("]");
    }
    printf("}\n");
    return 0;
}

/* ---- concurrent rewriters and verification ----------------------------------------------- */

#define HDR_FMT "VFSBENCH writer=%03d seq=%07d size=%010zu\n"
#define HDR_LEN 48
#define TRL_FMT "\nEND writer=%03d seq=%07d\n"
#define TRL_LEN 28

/* The complete content of rewrite `seq` by writer `w`: header, derived payload, trailer. */
static void make_content(char *buf, size_t size, int w, int seq) {
    char hdr[HDR_LEN + 1], trl[TRL_LEN + 1];
    snprintf(hdr, sizeof hdr, HDR_FMT, w, seq, size);
    snprintf(trl, sizeof trl, TRL_FMT, w, seq);
    memcpy(buf, hdr, HDR_LEN);
    fill_pattern(buf + HDR_LEN, size - HDR_LEN - TRL_LEN, ((uint64_t)w << 32) | (uint64_t)seq);
    memcpy(buf + size - TRL_LEN, trl, TRL_LEN);
}

static int cmd_rewriters(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: rewriters FILE WRITERS REWRITES SIZE CHUNK LOCKFILE\n"); return 2; }
    const char *path = argv[2];
    int writers = atoi(argv[3]);
    int rewrites = atoi(argv[4]);
    size_t size = (size_t)atol(argv[5]);
    size_t chunk = (size_t)atol(argv[6]);
    const char *lockpath = argv[7];
    if (size < HDR_LEN + TRL_LEN + 8) { fprintf(stderr, "size too small\n"); return 2; }
    int pipes[writers][2];
    pid_t pids[writers];
    double t0 = now_s();
    for (int w = 0; w < writers; w++) {
        if (pipe(pipes[w]) < 0) die("pipe", NULL);
        pid_t p = fork();
        if (p < 0) die("fork", NULL);
        if (p == 0) {
            close(pipes[w][0]);
            int lk = open(lockpath, O_RDWR | O_CREAT, 0644);   /* own open file description */
            if (lk < 0) die("open", lockpath);
            char *buf = malloc(size);
            int completed = 0, errors = 0;
            for (int seq = 1; seq <= rewrites; seq++) {
                make_content(buf, size, w, seq);
                if (flock(lk, LOCK_EX) < 0) die("flock", lockpath);
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                int ok = fd >= 0;
                for (size_t off = 0; ok && off < size; off += chunk) {
                    size_t n = size - off < chunk ? size - off : chunk;
                    if (write_all(fd, buf + off, n) < 0) ok = 0;
                }
                if (fd >= 0 && close(fd) < 0) ok = 0;
                flock(lk, LOCK_UN);
                if (ok) completed++; else errors++;
            }
            char msg[64];
            int n = snprintf(msg, sizeof msg, "%d %d\n", completed, errors);
            if (write(pipes[w][1], msg, n) != n) _exit(3);
            _exit(0);
        }
        pids[w] = p;
        close(pipes[w][1]);
    }
    int completed[writers], errors[writers];
    for (int w = 0; w < writers; w++) {
        char msg[64] = {0};
        ssize_t n = read(pipes[w][0], msg, sizeof msg - 1);
        completed[w] = 0; errors[w] = rewrites;
        if (n > 0) sscanf(msg, "%d %d", &completed[w], &errors[w]);
        int st;
        waitpid(pids[w], &st, 0);
    }
    double t1 = now_s();
    printf("{\"writers\":%d,\"rewrites\":%d,\"size\":%zu,\"chunk\":%zu,\"wall_s\":%.6f,\"completed\":[",
           writers, rewrites, size, chunk, t1 - t0);
    for (int w = 0; w < writers; w++) printf("%s%d", w ? "," : "", completed[w]);
    printf("],\"errors\":[");
    for (int w = 0; w < writers; w++) printf("%s%d", w ? "," : "", errors[w]);
    printf("]}\n");
    return 0;
}

static int cmd_verify(int argc, char **argv) {
    size_t cap = 1 << 20;
    char *got = malloc(cap), *want = malloc(cap);
    for (int i = 2; i < argc; i++) {
        const char *path = argv[i];
        int fd = open(path, O_RDONLY);
        if (fd < 0) { printf("TORN unreadable %s\n", path); continue; }
        struct stat st;
        fstat(fd, &st);
        size_t len = (size_t)st.st_size;
        if (len > cap) { cap = len; got = realloc(got, cap); want = realloc(want, cap); }
        size_t have = 0;
        while (have < len) {
            ssize_t r = read(fd, got + have, len - have);
            if (r <= 0) break;
            have += (size_t)r;
        }
        close(fd);
        int w, seq;
        size_t size;
        if (have < HDR_LEN) { printf("TORN short(%zu) %s\n", have, path); continue; }
        char hdr[HDR_LEN + 1];
        memcpy(hdr, got, HDR_LEN);
        hdr[HDR_LEN] = 0;
        if (sscanf(hdr, "VFSBENCH writer=%d seq=%d size=%zu", &w, &seq, &size) != 3) {
            printf("TORN bad-header %s\n", path); continue;
        }
        if (size != have) { printf("TORN size(%zu!=%zu) %s\n", have, size, path); continue; }
        if (size > cap) { printf("TORN huge %s\n", path); continue; }
        make_content(want, size, w, seq);
        if (memcmp(want, got, size) != 0) { printf("TORN mixed-content %s\n", path); continue; }
        printf("OK %d %d %s\n", w, seq, path);
    }
    return 0;
}

/* ---- a job that uses every core ---------------------------------------------------------- */

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_loaded(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: loaded FILE PROCS REWRITES KIB BURN_MS LOCKFILE\n"); return 2; }
    const char *path = argv[2], *lockpath = argv[7];
    int procs = atoi(argv[3]), rewrites = atoi(argv[4]);
    size_t size = (size_t)atol(argv[5]) * 1024;
    double burn = atof(argv[6]) / 1000.0;
    int per = rewrites / procs;
    double t0 = now_s();
    for (int w = 0; w < procs; w++) {
        pid_t p = fork();
        if (p < 0) die("fork", NULL);
        if (p) continue;
        int lk = open(lockpath, O_RDWR | O_CREAT, 0644);
        if (lk < 0) die("open", lockpath);
        char *buf = malloc(size);
        volatile uint64_t sink = 0;
        for (int i = 1; i <= per; i++) {
            double until = thread_cpu_s() + burn;
            while (thread_cpu_s() < until)
                for (int k = 0; k < 10000; k++) sink = sink * 6364136223846793005ULL + k;
            fill_pattern(buf, size, ((uint64_t)w << 32) | (uint64_t)i);
            if (flock(lk, LOCK_EX) < 0) die("flock", lockpath);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) die("open", path);
            for (size_t off = 0; off < size; off += 65536)
                if (write_all(fd, buf + off, size - off < 65536 ? size - off : 65536) < 0) die("write", path);
            if (close(fd) < 0) die("close", path);
            flock(lk, LOCK_UN);
        }
        _exit(0);
    }
    int bad = 0, st;
    for (int w = 0; w < procs; w++) {
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) bad++;
    }
    double t1 = now_s();
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"procs\":%d,\"rewrites\":%d,\"failed_procs\":%d,\"wall_s\":%.6f,\"cpu_s\":%.6f}\n",
           procs, per * procs, bad, t1 - t0, cpu);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: vfsbench seqwrite|seqread|closelat|rewriters|loaded|dropcache|openloop|verify ...\n"); return 2; }
    if (!strcmp(argv[1], "seqwrite")) return cmd_seqwrite(argc, argv);
    if (!strcmp(argv[1], "seqread")) return cmd_seqread(argc, argv);
    if (!strcmp(argv[1], "closelat")) return cmd_closelat(argc, argv);
    if (!strcmp(argv[1], "rewriters")) return cmd_rewriters(argc, argv);
    if (!strcmp(argv[1], "verify")) return cmd_verify(argc, argv);
    if (!strcmp(argv[1], "loaded")) return cmd_loaded(argc, argv);
    if (!strcmp(argv[1], "dropcache")) return cmd_dropcache(argc, argv);
    if (!strcmp(argv[1], "openloop")) return cmd_openloop(argc, argv);
    fprintf(stderr, "vfsbench: unknown command %s\n", argv[1]);
    return 2;
}
