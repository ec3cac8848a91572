/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD server's entry in the export driver table (src/export/export-drivers.c). */
#pragma once

#include "core/core.h"

extern const struct export_driver nbd_export_driver;
