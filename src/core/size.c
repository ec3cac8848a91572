/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parsing of sizes ("64K", "10G"), booleans and integers from config and control requests. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int parse_size(const char *s, uint64_t *ret) {
        if (!s)
                return -EINVAL;
        while (isspace((unsigned char) *s))
                s++;
        if (!isdigit((unsigned char) *s))
                return -EINVAL; /* also rejects "-1" and "" */

        /* Integer part, then an optional fraction (1.5G) kept as a decimal numerator. */
        uint64_t whole = 0, frac = 0, frac_div = 1;
        const char *p = s;
        for (; isdigit((unsigned char) *p); p++) {
                if (whole > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t) (*p - '0');
        }
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++)
                        if (frac_div < 1000000000ULL) {
                                frac = frac * 10 + (uint64_t) (*p - '0');
                                frac_div *= 10;
                        }
        }
        unsigned shift = 0;
        switch (toupper((unsigned char) *p)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        case 'P': shift = 50; break;
        case 'E': shift = 60; break;
        default: break;
        }
        if (shift) {
                p++;
                if (*p == 'i' && toupper((unsigned char) p[1]) == 'B')
                        p += 2;
                else if (toupper((unsigned char) *p) == 'B')
                        p++;
        } else if (toupper((unsigned char) *p) == 'B')
                p++;
        while (isspace((unsigned char) *p))
                p++;
        if (*p)
                return -EINVAL;
        if (frac && !shift)
                return -EINVAL; /* "1.5" bytes makes no sense */

        if (shift && whole > (UINT64_MAX >> shift))
                return -ERANGE;
        uint64_t v = whole << shift;
        if (frac) {
                /* frac/frac_div of one unit; frac_div <= 1e9 < 2^30, so no overflow for shift <= 30,
                 * and for larger units compute in two steps. */
                uint64_t unit = 1ULL << shift;
                uint64_t add = (unit / frac_div) * frac + ((unit % frac_div) * frac) / frac_div;
                if (v > UINT64_MAX - add)
                        return -ERANGE;
                v += add;
        }
        *ret = v;
        return 0;
}

int parse_bool(const char *s) {
        static const char *const yes[] = { "1", "on", "yes", "true", "y" };
        static const char *const no[] = { "0", "off", "no", "false", "n" };
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

int parse_int64(const char *s, int64_t *ret) {
        if (!s || !*s || isspace((unsigned char) *s))
                return -EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 0);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

char *format_size(uint64_t v, char *buf, size_t len) {
        static const char units[] = "KMGTPE";
        if (v < 1024 || (v & 1023)) {
                snprintf(buf, len, "%" PRIu64, v);
                return buf;
        }
        int u = -1;
        while (v >= 1024 && (v & 1023) == 0 && u < 5) {
                v >>= 10;
                u++;
        }
        snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
        return buf;
}
