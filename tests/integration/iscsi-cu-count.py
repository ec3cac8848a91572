#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Per-suite passed/failed/skipped counts from an iscsi-test-cu log. CUnit counts a skipped test
# as passed and prints "[FAILED]" lines that are only informational, so a test is counted as
# failed only where CUnit lists an assertion under it ("N. file.c:line"), and as skipped where
# it printed "[SKIPPED]". Usage: iscsi-cu-count.py LOG... (prints the table and TOTAL line).
import collections
import re
import sys

tests = collections.OrderedDict()
for path in sys.argv[1:]:
    cur = None
    suite = '?'
    with open(path, errors='replace') as f:
        for line in f:
            m = re.match(r'Suite: (\S+)', line)
            if m:
                suite = m.group(1)
                continue
            m = re.match(r'\s+Test: (\S+) \.\.\.(.*)', line)
            if m:
                cur = {'suite': suite, 'failed': False, 'skipped': '[SKIPPED]' in m.group(2)}
                tests[(path, suite, m.group(1))] = cur
                continue
            if cur is None:
                continue
            if '[SKIPPED]' in line:
                cur['skipped'] = True
            if re.match(r'\s+\d+\. \S+\.c:\d+', line):
                cur['failed'] = True

table = collections.OrderedDict()
for (path, suite, name), t in tests.items():
    row = table.setdefault(suite, [0, 0, 0])
    row[1 if t['failed'] else 2 if t['skipped'] else 0] += 1
total = [0, 0, 0]
print(f"{'suite':26s} {'pass':>5s} {'fail':>5s} {'skip':>5s}")
for suite, row in table.items():
    print(f"{suite:26s} {row[0]:5d} {row[1]:5d} {row[2]:5d}")
    total = [a + b for a, b in zip(total, row)]
for (path, suite, name), t in tests.items():
    if t['failed']:
        print(f"FAILED {suite}.{name}")
print(f"TOTAL {total[0]} {total[1]} {total[2]}")
