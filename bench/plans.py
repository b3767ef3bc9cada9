"""Which lines of a query plan read a table in full, or as good as: one rule for bench_scale and the tests.

SQLite (EXPLAIN QUERY PLAN) and PostgreSQL (EXPLAIN) alike. "As good as": messages or tickets searched by
their channel alone (two values, half the table), and on PostgreSQL an index walked from end to end (no
Index Cond under it, e.g. a primary key read in order with a filter).
"""

from __future__ import annotations

import re

# Whole-table aggregates over tables staff fill by hand (corrections, the roster): the classifier's change
# key; and the expert load, one row per person ever assigned. They stay small whatever the number of tickets.
SMALL_TABLES = ("labelled_examples", "roster_experts", "expert_load")

# "SCAN CONSTANT ROW" is SQLite selecting scalar subqueries with no FROM: no table is read.
_SQLITE_SCAN = re.compile(r"^SCAN (?!CONSTANT ROW$)(\w+)")
_SQLITE_BY_CHANNEL = re.compile(r"^SEARCH (messages|tickets) USING (?:COVERING )?INDEX \w+ \(channel=\?\)$")
_PG_SCAN = re.compile(r"Seq Scan on (\w+)")
_PG_BY_CHANNEL = re.compile(r"Index Cond: \(\(channel\)::text = '[^']*'::text\)$")
_PG_INDEX_WALK = re.compile(r"Index (?:Only )?Scan(?: Backward)? using \w+ on (\w+)")


def unserved(plan: list[str]) -> list[str]:
    """The plan lines that read a table (not a derived result, not a small table) without an index search."""
    bad = []
    lines = [line.strip().lstrip("->").strip() for line in plan]
    for i, line in enumerate(lines):
        walk = _PG_INDEX_WALK.search(line)
        if walk and not (i + 1 < len(lines) and lines[i + 1].startswith("Index Cond")):
            scan = walk
        else:
            scan = _SQLITE_SCAN.match(line) or _PG_SCAN.search(line)
        if scan and scan.group(1) not in SMALL_TABLES and not scan.group(1).startswith("anon_"):
            bad.append(line)
        elif _SQLITE_BY_CHANNEL.match(line) or _PG_BY_CHANNEL.search(line):
            bad.append(line)
    return bad
