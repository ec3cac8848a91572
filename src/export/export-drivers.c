/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The static table of protocol servers built into oriond. */
#include "core/core.h"
#include "export/nbd/nbd-server.h"

const struct export_driver *const export_drivers[] = {
        &nbd_export_driver,
        NULL,
};
