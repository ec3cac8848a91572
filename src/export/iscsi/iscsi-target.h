/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The iSCSI target export driver, listed in src/export/export-drivers.c. */
#pragma once

#include "core/core.h"

extern const struct export_driver iscsi_export_driver;
