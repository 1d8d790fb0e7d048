"""Write a random-weight LLaDA / Dream stand-in checkpoint folder (see nclb.models.standin).

python scripts/make_standin.py --family llada --out /tmp/llada-standin
nclb run model=llada model.path=/tmp/llada-standin ...
"""

from __future__ import annotations

import argparse

from nclb.models.standin import SMALL_SIZES, SPECS, build_standin


def main(argv: list[str] | None = None) -> None:
    """Parse the options, build the folder, print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(SPECS), required=True)
    parser.add_argument("--out", required=True, help="folder to write (created if needed)")
    for key, value in SMALL_SIZES.items():
        parser.add_argument(f"--{key}", type=int, default=value)
    parser.add_argument("--kv-heads", type=int, default=None, help="default: --heads")
    parser.add_argument("--seed", type=int, default=0)
    args = vars(parser.parse_args(argv))
    family, out, seed = args.pop("family"), args.pop("out"), args.pop("seed")
    print(build_standin(family, out, seed=seed, **args))


if __name__ == "__main__":
    main()
