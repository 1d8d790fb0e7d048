"""The key/value cache: cache=none is today's decoding, a refresh pass is a full pass, a cached
pass reads the stale keys and values it should, and outputs do not depend on the batching."""

from __future__ import annotations

import json

import pytest

from greedy_outputs import GOLDEN, SETTINGS, as_text, key, outputs


@pytest.mark.parametrize(
    ("task", "limit", "overrides"), SETTINGS, ids=[key(t, o) for t, n, o in SETTINGS]
)
def test_cache_none_gives_the_logged_greedy_outputs_of_every_decoder(task, limit, overrides):
    golden = json.loads(GOLDEN.read_text())[key(task, overrides)]
    got = [as_text(r) for r in outputs(task, limit, [*overrides, "cache=none"])]
    assert got == golden
