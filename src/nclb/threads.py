"""How many CPU threads torch uses: one decision for every `nclb` command (`threads=` key).

The default is one thread. The tiny model's tensors are small: on the 2-core development
machine with other work running, torch's default (one thread per core) made `nclb run` on
sudoku9 6-14x slower than one thread (131 s vs 9.4 s for 16 examples), because the
threads wait for cores that are busy. `threads=auto` keeps torch's default, for a large model
on a CPU with idle cores; `threads=N` pins N. On a GPU the setting only affects host-side work.
"""

from __future__ import annotations

from typing import Any

from nclb.schema import Integer

DEFAULT = 1
THREADS = Integer(min=1, words=("auto",), meaning="torch's default")


def parse_threads(value: Any) -> int | None:
    """The thread count asked for: an int >= 1, None for `auto` (torch's default), DEFAULT when
    unset; a UserError for anything else."""
    if value is None:
        return DEFAULT
    value = THREADS.check("threads", value)
    return None if value == "auto" else value


def use_threads(value: Any) -> int:
    """Set torch's CPU threads per `value` (see parse_threads); returns the count in use."""
    import torch

    count = parse_threads(value)
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()
