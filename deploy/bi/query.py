#!/usr/bin/env python3
"""Runs Spiral's BI views (views.sql beside this file) over an export directory with DuckDB
and prints each query's rows as one JSON array per line.

    python3 deploy/bi/query.py EXPORT_DIR ["SQL" ...]      # default: FROM stage_table

Needs the duckdb package (scripts/deps.sh installs it into ~/.cache/spiral/duckdb).
"""
import json
import os
import sys

import duckdb


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    views = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "views.sql")).read()
    os.chdir(sys.argv[1])  # the views read paths relative to the export directory
    con = duckdb.connect()
    con.execute(views)
    for sql in sys.argv[2:] or ["FROM stage_table"]:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, row)) for row in cur.fetchall()]
        print(json.dumps(rows, default=str))


if __name__ == "__main__":
    main()
