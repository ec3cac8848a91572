/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzz target over every file of a corpus directory (or the files named), so CI replays
 * the seed corpus without libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
                if (len == cap) {
                        cap = cap ? cap * 2 : 4096;
                        uint8_t *n = realloc(buf, cap);
                        if (!n) {
                                free(buf);
                                fclose(f);
                                return -1;
                        }
                        buf = n;
                }
                size_t r = fread(buf + len, 1, cap - len, f);
                if (r == 0)
                        break;
                len += r;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        int n = 0, failed = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed += run_file(argv[i]) < 0;
                        n++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                if (!d)
                        return 1;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        char path[4096];
                        snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
                        failed += run_file(path) < 0;
                        n++;
                }
                closedir(d);
        }
        printf("1..1\n%s 1 - replayed %d inputs\n", (failed || n == 0) ? "not ok" : "ok", n);
        return (failed || n == 0) ? 1 : 0;
}
