/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The static table of built-in leaf types (one entry per HAVE_X). Layers are plugins instead. */
#include "orion/plugin.h"

extern const struct orion_plugin orion_type_memory;
extern const struct orion_plugin orion_type_null;
#if HAVE_LIBURING
extern const struct orion_plugin orion_type_file;
#endif
#if HAVE_LIBNBD
extern const struct orion_plugin orion_type_nbd;
#endif
#if HAVE_LIBISCSI
extern const struct orion_plugin orion_type_iscsi;
#endif

const struct orion_plugin *const builtin_types[] = {
        &orion_type_memory,
        &orion_type_null,
#if HAVE_LIBURING
        &orion_type_file,
#endif
#if HAVE_LIBNBD
        &orion_type_nbd,
#endif
#if HAVE_LIBISCSI
        &orion_type_iscsi,
#endif
        NULL,
};
