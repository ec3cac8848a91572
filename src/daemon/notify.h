/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
#pragma once

/* Send state ("READY=1", "STOPPING=1", "STATUS=..."). Returns 1 if sent, 0 if $NOTIFY_SOCKET is
 * unset, -errno on failure. */
int notify_send(const char *state);
