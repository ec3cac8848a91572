/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The static table of protocol servers built into oriond. */
#include "core/core.h"

const struct export_driver *const export_drivers[] = {
        NULL,
};
