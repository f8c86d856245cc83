"""Check the site file in a short-lived child process and bring back only the result.

Why: validating a big site file (10,000 sensors) builds line-marked YAML, every
intermediate model and every diagnostic; the peak (≈ 140 MiB at 10,000 sensors) would stay
in a long-running agent's resident memory because CPython rarely returns freed arenas to
the system. The child does the work and exits; the agent validates the result's JSON text
(the models only: ≈ 9 MiB at 10,000 sensors, docs/performance.md). The child also keeps a
loader bug from taking down a running agent.

The child prints on stdout the diagnostics and the files read (one JSON line), then the
configuration as JSON (secret references kept as references, never resolved values). If the child
cannot run at all, the check runs in this process instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_agent.config.diagnostics import Diagnostic
from edge_agent.config.models import SiteConfig, share_fields_sets, site_json
from edge_agent.config.models.sharing import share_equal_models

log = logging.getLogger(__name__)

CHILD_TIMEOUT_S = 300.0
ISOLATE_ABOVE_BYTES = 200_000
"""Site files smaller than this (together with their includes) are checked in this
process: their peak is small, and a second interpreter would cost ≈ 0.5 s of start-up."""
_FALLBACK = "Site check in a child process failed; checking here."
Checked = tuple[SiteConfig | None, list[Diagnostic], list[Path]]


def check_here(site_path: Path) -> Checked:
    """The check in this process: (config or None, diagnostics, files read)."""
    from edge_agent.config.loader import check_site_files
    from edge_agent.service.reload import site_files

    config, diagnostics = check_site_files([site_path])
    if config is not None:
        share_fields_sets(config)  # kept for the agent's life: ≈ 430 bytes a Modbus sensor
        share_equal_models(config)  # repeated sections (rules' chattering, scales): one each
    return config, list(diagnostics), site_files(site_path)


def _encode(checked: Checked) -> str:
    """Two parts, one line between: the diagnostics and files read (a JSON line), then
    the configuration as the site's own JSON (unset options left out, secret references
    as written) or ``null``."""
    config, diagnostics, files = checked
    head = json.dumps(
        {"diagnostics": [asdict(d) for d in diagnostics], "files": [str(f) for f in files]},
        default=str,
    )
    return head + "\n" + ("null" if config is None else site_json(config))


def _decode(text: str) -> Checked:
    head, _, body = text.partition("\n")
    document: dict[str, Any] = json.loads(head)
    diagnostics = [
        Diagnostic(
            file=d["file"],
            line=d["line"],
            col=d["col"],
            severity=d["severity"],
            path=tuple(d["path"]),
            message=d["message"],
        )
        for d in document["diagnostics"]
    ]
    # Validated from the text, never through Python data: the agent keeps no trace of
    # the parse. Unset options stay unset: the models carry no more than the file said.
    config = None if body.strip() == "null" else SiteConfig.model_validate_json(body)
    if config is not None:
        share_fields_sets(config)
        share_equal_models(config)
    return config, diagnostics, [Path(f) for f in document["files"]]


def _command(site_path: Path) -> list[str]:
    return [sys.executable, "-m", "edge_agent.service.isolated_load", str(site_path)]


def _is_big(site_path: Path) -> bool:
    from edge_agent.service.reload import site_files

    total = 0
    for path in site_files(site_path):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total > ISOLATE_ABOVE_BYTES


def check_isolated(site_path: Path) -> Checked:
    """The check in a child process for a big site (blocking; for start-up)."""
    if not _is_big(site_path):
        return check_here(site_path)
    try:
        done = subprocess.run(
            _command(site_path),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode == 0:
            return _decode(done.stdout)
        log.warning(
            _FALLBACK,
            extra={"returncode": done.returncode, "stderr": done.stderr[-2000:]},
        )
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        log.warning(_FALLBACK, extra={"error": repr(exc)})
    return check_here(site_path)


async def check_isolated_async(site_path: Path) -> Checked:
    """The check in a child process for a big site, awaited without blocking the event
    loop (reloads)."""
    if not await asyncio.to_thread(_is_big, site_path):
        return await asyncio.to_thread(check_here, site_path)
    try:
        process = await asyncio.create_subprocess_exec(
            *_command(site_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(CHILD_TIMEOUT_S):
                out, err = await process.communicate()
        except BaseException:  # timed out, or this reload was cancelled: no orphan child
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        if process.returncode == 0:
            return await asyncio.to_thread(_decode, out.decode())
        log.warning(
            _FALLBACK,
            extra={"returncode": process.returncode, "stderr": err.decode()[-2000:]},
        )
    except (OSError, TimeoutError, ValueError, KeyError) as exc:
        log.warning(_FALLBACK, extra={"error": repr(exc)})
    return await asyncio.to_thread(check_here, site_path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m edge_agent.service.isolated_load SITE.yaml", file=sys.stderr)
        return 2
    sys.stdout.write(_encode(check_here(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
