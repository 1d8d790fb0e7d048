"""`make cache`: the key/value cache table (results/cache.md + csv) from logged runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nclb.experiments.cache_table import build, write
from nclb.runs.revision import git_revision
from nclb.threads import use_threads


def main(argv: list[str] | None = None) -> None:
    """Decode what is not logged yet, then write the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out-dir", default="outputs/cache", help="run folders (default: %(default)s)"
    )
    parser.add_argument("--results", default="results", help="where cache.md/csv go")
    args = parser.parse_args(argv)
    use_threads(1)
    rows = build(Path(args.out_dir))
    command = "make cache"
    for path in write(rows, Path(args.results), command, git_revision()):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
