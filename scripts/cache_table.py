"""`make cache`: the key/value cache table (results/cache.md + csv) from logged runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nclb.errors import exit_on_user_error
from nclb.experiments.cache_table import Inputs, build, write
from nclb.tables.shipped import read_log, write_log
from nclb.tables.write import revisions
from nclb.threads import use_threads

STEM = "cache"


def main(argv: list[str] | None = None) -> list[Path]:
    """Decode what is not logged yet (unless --no-run), then write the table and its inputs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out-dir", default="outputs/cache", help="run folders (default: %(default)s)"
    )
    parser.add_argument("--results", default="results", help="where cache.md/csv go")
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="decode nothing: build from the run folders, else from the inputs shipped in "
        "RESULTS/logs/cache.json (a fresh clone)",
    )
    args = parser.parse_args(argv)
    use_threads(1)
    results = Path(args.results)
    shipped = Inputs.from_log(read_log(results, STEM)) if args.no_run else Inputs()
    rows, used = build(Path(args.out_dir), shipped=shipped, execute=not args.no_run)
    git = revisions(list(used.runs.values()))
    paths = write(rows, results, "make cache", git)
    paths.append(write_log(results, STEM, used.as_log()))
    for path in paths:
        print(path, file=sys.stderr)
    return paths


if __name__ == "__main__":
    exit_on_user_error(main)
