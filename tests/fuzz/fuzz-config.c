/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the config parser: the input is the text of an oriond.conf. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        if (!init) {
                orion_log_set_level(ORION_LOG_ERR - 1); /* quiet */
                init = true;
        }
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        struct daemon_config cfg;
        struct orion_error err = { 0 };
        config_init(&cfg);
        int r = config_parse_string(&cfg, text, &err);
        /* a refusal always says why, and only a refusal does */
        if ((r < 0) != (err.code != 0) || (r < 0 && !err.msg[0]))
                abort();
        if (r == 0)
                (void) config_opt(&cfg, "nbd-tls");
        config_done(&cfg);
        free(text);
        return 0;
}
