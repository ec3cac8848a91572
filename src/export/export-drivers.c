/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The static table of protocol servers built into oriond. */
#include "core/core.h"
#include "export/nbd/nbd-server.h"
#include "export/iscsi/iscsi-target.h"

#if HAVE_FUSE
extern const struct export_driver fuse_export_driver;
#endif

const struct export_driver *const export_drivers[] = {
        &nbd_export_driver,
        &iscsi_export_driver,
#if HAVE_FUSE
        &fuse_export_driver,
#endif
        NULL,
};
