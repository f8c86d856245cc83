"""A full disk (here: a file-size limit, RLIMIT_FSIZE with SIGXFSZ ignored) refuses new
events loudly and loses nothing already stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge_agent.outbox import Outbox
from tests.conftest import REPO_ROOT

CHILD = r"""
import json, logging, resource, signal, sys
from pathlib import Path
from edge_agent.outbox import Outbox, OutboxFull

logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(levelname)s %(message)s")
directory, limit = Path(sys.argv[1]), int(sys.argv[2])
outbox = Outbox.open(directory, max_bytes=1_000_000_000)  # the cap is not what stops us
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
stored, refusals = [], []
for n in range(100_000):
    try:
        if n % 2:
            stored += outbox.put_many([{"n": n, "k": k, "pad": "x" * 300} for k in range(3)])
        else:
            stored.append(outbox.put({"n": n, "k": 0, "pad": "x" * 300}))
    except OutboxFull as exc:
        refusals.append(str(exc) + (" [disk_full]" if exc.disk_full else ""))
        if len(refusals) >= 3:
            break
leased = [item.id for item in outbox.lease(1_000_000)]
stats = outbox.stats()
print(json.dumps({"stored": stored, "refusals": refusals, "leased": leased,
                  "refused": stats.refused, "depth": stats.depth,
                  "refusing": stats.refusing}))
"""


def test_disk_full_refuses_and_keeps_everything(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox.open(directory, 1_000_000_000) as outbox:
        before = outbox.put({"n": -1, "k": 0, "pad": "before"})
    limit = 1_000_000
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory), str(limit)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["refusals"]) == 3
    assert all("disk full" in r for r in report["refusals"])
    # Said as such (the agent's /readyz: "the disk is full", not "at its cap").
    assert all(r.endswith("[disk_full]") for r in report["refusals"])
    assert report["refused"] >= 3
    assert report["refusing"] is True  # health degraded, though far below the cap
    assert "refused new events" in result.stderr  # logged at ERROR, loudly
    stored = report["stored"]
    assert len(stored) > 20
    # The child could still read everything back after the refusals.
    assert report["leased"] == [before, *stored]
    assert report["depth"] == len(stored) + 1

    # And after the "disk" has room again, nothing was lost or damaged.
    with Outbox.open(directory, 1_000_000_000) as outbox:
        items = outbox.lease(1_000_000)
        assert [i.id for i in items] == [before, *stored]
        assert all(i.payload["pad"] in ("before", "x" * 300) for i in items)
        outbox.put({"n": "after"})
