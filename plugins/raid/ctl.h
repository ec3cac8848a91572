/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Management of a raid node: ctl verbs, status and statistics. */
#pragma once

#include "raid.h"

int raid_ctl(struct orion_bdev *b, const char *verb, struct json_object *args,
             struct json_object **ret_reply, struct orion_error *err);
void raid_status(struct orion_bdev *b, struct json_object *out);
void raid_stats(struct orion_bdev *b, struct json_object *sink);
