/* Cost of the name trap, seen from inside the job: ns per call of a loop of one kind of call.
 *   trapcost write N          N one-byte writes to /dev/null (never trapped: the filter's cost on every call)
 *   trapcost rename N         N renames of a file that is not a target (trapped, answered "run it")
 *   trapcost onto N TARGET    N atomic saves onto TARGET: write a 4 KiB temp file, rename it onto TARGET
 * Prints one line: "<kind> <ns per call>". Built by bench/trap.sh. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: trapcost write|rename|onto N [TARGET]\n"); return 2; }
    long n = atol(argv[2]);
    double t0, t1;
    if (!strcmp(argv[1], "write")) {
        int fd = open("/dev/null", O_WRONLY);
        t0 = now();
        for (long i = 0; i < n; i++) if (write(fd, "x", 1) != 1) return 1;
        t1 = now();
    } else if (!strcmp(argv[1], "rename")) {
        int fd = open("trapcost.a", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        close(fd);
        t0 = now();
        for (long i = 0; i < n; i++) {
            if (rename(i % 2 ? "trapcost.b" : "trapcost.a", i % 2 ? "trapcost.a" : "trapcost.b")) { perror("rename"); return 1; }
        }
        t1 = now();
        unlink("trapcost.a");
        unlink("trapcost.b");
    } else if (!strcmp(argv[1], "onto") && argc > 3) {
        static char buf[4096];
        t0 = now();
        for (long i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "save %ld\n", i);
            int fd = open("trapcost.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || write(fd, buf, sizeof buf) != sizeof buf || close(fd)) { perror("tmp"); return 1; }
            if (rename("trapcost.tmp", argv[3])) { perror("rename onto"); return 1; }
        }
        t1 = now();
    } else {
        return 2;
    }
    printf("%s %.0f\n", argv[1], (t1 - t0) / n);
    return 0;
}
