"""The agent's malloc settings (``service/heap.py``, issue 16): large blocks a tuned process
frees go back to the system, ``release_free_heap`` returns the holes an untuned one keeps,
the operator's glibc variables win, and nothing happens off glibc. Each check runs in a
fresh interpreter: malloc settings are the whole process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from edge_agent.service import heap

GLIBC = sys.platform.startswith("linux") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith(
    "glibc"
)
needs_glibc = pytest.mark.skipif(not GLIBC, reason="malloc tuning is glibc's")

# Frees one large block (which makes an untuned glibc raise its mmap threshold to that
# size), then takes 100 blocks of 200 kB and frees every other one: holes in the heap for
# an untuned process, unmapped blocks for a tuned one.
PROBE = textwrap.dedent(
    """
    import json, os, sys
    from edge_agent.service.heap import release_free_heap, tune_heap

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    tuned = tune_heap() if sys.argv[1] == "tune" else []
    big = bytearray(8 * 2**20)
    del big
    blocks = [bytearray(200_000) for _ in range(100)]
    kept = blocks[1::2]
    full = rss_mib()
    del blocks
    freed = full - rss_mib()
    released = release_free_heap() if sys.argv[2] == "trim" else None
    print(json.dumps({"tuned": tuned, "freed_mib": freed, "released": released,
                      "after_trim_mib": full - rss_mib(), "kept": len(kept)}))
    """
)


def probe(tune: bool, trim: bool, env: dict[str, str] | None = None) -> dict[str, object]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
    }
    clean.pop("PYTHONMALLOC", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "tune" if tune else "-", "trim" if trim else "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**clean, **(env or {})},
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@needs_glibc
def test_a_tuned_process_gives_freed_large_blocks_back() -> None:
    tuned = probe(tune=True, trim=False)
    assert tuned["tuned"] == ["MALLOC_ARENA_MAX=1", "MALLOC_MMAP_THRESHOLD_=131072"]
    assert isinstance(tuned["freed_mib"], float) and tuned["freed_mib"] > 7  # 50 × 200 kB
    # The same steps untuned leave the freed blocks as holes in the heap: what the
    # settings are for.
    untuned = probe(tune=False, trim=False)
    assert isinstance(untuned["freed_mib"], float) and untuned["freed_mib"] < 3


@needs_glibc
def test_release_free_heap_returns_the_holes() -> None:
    untuned = probe(tune=False, trim=True)
    assert untuned["released"] is True
    assert isinstance(untuned["after_trim_mib"], float) and untuned["after_trim_mib"] > 7


@needs_glibc
def test_the_operators_glibc_variables_win() -> None:
    result = probe(tune=True, trim=False, env={"MALLOC_MMAP_THRESHOLD_": "4194304"})
    assert result["tuned"] == ["MALLOC_ARENA_MAX=1"]
    # Their threshold (4 MiB) holds: the 200 kB blocks live in the heap, as untuned.
    assert isinstance(result["freed_mib"], float) and result["freed_mib"] < 3


@needs_glibc
def test_the_operators_glibc_tunables_win() -> None:
    result = probe(
        tune=True, trim=False, env={"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4194304"}
    )
    assert result["tuned"] == ["MALLOC_ARENA_MAX=1"]
    assert isinstance(result["freed_mib"], float) and result["freed_mib"] < 3


def test_nothing_happens_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.tune_heap() == []
    assert heap.release_free_heap() is False
