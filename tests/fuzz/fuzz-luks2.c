/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the encrypt layer's LUKS2 reader: the input is a device image (both binary headers,
 * checksums, JSON areas, the secondary-header scan) and also a bare JSON area. Whatever is
 * accepted must decode field by field, dump, and survive a write/read round trip. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "plugins/encrypt/luks2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct buf {
        const uint8_t *data;
        size_t size;
};

static int buf_read(void *ctx, void *out, size_t len, uint64_t off) {
        struct buf *b = ctx;
        if (off > b->size || len > b->size - off)
                return -EIO;
        memcpy(out, b->data + off, len);
        return 0;
}

static void exercise(struct luks2_hdr *hdr) {
        struct luks2_keyslot ks;
        struct luks2_digest d;
        struct json_object *dump;
        int ids[LUKS2_OBJECTS_MAX], n;
        uint64_t off;

        n = luks2_keyslot_list(hdr, ids);
        for (int i = 0; i < n; i++)
                (void) luks2_keyslot_get(hdr, ids[i], &ks, NULL);
        (void) luks2_digest_get(hdr, &d, NULL);
        (void) luks2_area_find(hdr, 258048, &off);
        dump = luks2_hdr_dump(hdr);
        (void) json_object_to_json_string(dump);
        json_object_put(dump);

        /* Re-encode both copies; a header we wrote must read back. */
        uint8_t *img = calloc(1, 2 * hdr->hdr_size);
        if (!img)
                return;
        if (luks2_hdr_encode(hdr, 0, img) == 0 && luks2_hdr_encode(hdr, 1, img + hdr->hdr_size) == 0) {
                struct buf b = { img, 2 * hdr->hdr_size };
                struct luks2_io io = { .ctx = &b, .size = b.size, .read = buf_read };
                struct luks2_hdr back;
                if (luks2_hdr_read(&io, &back, NULL) != 0)
                        abort();
                luks2_hdr_done(&back);
        }
        free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct buf b = { data, size };
        struct luks2_io io = { .ctx = &b, .size = size, .read = buf_read };
        struct luks2_hdr hdr;
        struct json_object *o = NULL;

        orion_log_set_level(ORION_LOG_ERR); /* damaged-copy warnings are expected here */
        if (luks2_hdr_read(&io, &hdr, NULL) == 0) {
                exercise(&hdr);
                luks2_hdr_done(&hdr);
        }
        if (size > 0 && luks2_json_parse((const char *) data, size, 16384, &o, NULL) == 0)
                json_object_put(o);
        return 0;
}
