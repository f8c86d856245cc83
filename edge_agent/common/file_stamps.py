"""Notice that files were replaced or rewritten, cheaply: one ``stat`` per file per look.

Used for certificate rotation (MQTT TLS files, OPC UA security files): the connection that
loaded them looks every ``CHECK_INTERVAL_S`` and reconnects with the new files. A stamp is
(device, inode, size, mtime in ns): a copy over the file, an editor's save-by-rename and a
``certbot``-style symlink swap all change it, and no content is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

CHECK_INTERVAL_S: Final = 30.0
"""How often certificate and key files are looked at (on top of SIGHUP)."""

Stamp = tuple[int, int, int, int] | None
"""(device, inode, size, mtime_ns); None when the file is missing or cannot be looked at."""


def stamp(path: Path) -> Stamp:
    """The stamp of ``path`` (following symlinks, as the loader does)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class FileStamps:
    """The stamps of a set of files as they were when taken; :meth:`changed` compares."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = tuple(dict.fromkeys(paths))
        self._stamps = {path: stamp(path) for path in self.paths}

    def changed(self) -> list[Path]:
        """The files whose stamp differs from the one taken (the stamps are kept: the
        caller takes new ones when it has loaded the files again)."""
        return [path for path in self.paths if stamp(path) != self._stamps[path]]


class RotationWatch:
    """When the files a connection loaded change, say so once the new ones load.

    The connection calls :meth:`loaded` just before it reads its files, then awaits
    :meth:`wait_for_rotation` beside its work and reconnects when it returns. Files that
    changed but do not load (a rotation half done: the certificate copied, not yet its key)
    leave the working connection alone; they are tried again when they change again.
    :meth:`poke` (SIGHUP) looks at once instead of at the next interval.
    """

    def __init__(self, name: str, paths: Iterable[Path], interval_s: float = CHECK_INTERVAL_S):
        self.name = name
        self.paths = tuple(paths)
        self.interval_s = interval_s
        self._loaded = FileStamps(self.paths)
        self._refused: FileStamps | None = None
        self._poke = asyncio.Event()

    def loaded(self) -> None:
        """The connection is about to read its files: remember them as they are now."""
        self._loaded = FileStamps(self.paths)
        self._refused = None

    def poke(self) -> None:
        """Look now (call on the event loop)."""
        self._poke.set()

    async def wait_for_rotation(self, trial: Callable[[], Awaitable[object]]) -> list[Path]:
        """Until the files differ from those loaded and ``trial`` (which loads them the way
        the connection will, raising if it cannot) succeeds; the files that changed."""
        while True:
            # asyncio.timeout, not wait_for: see MqttForwarder.run (a cancel is never lost).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._poke.wait()
            self._poke.clear()
            changed = self._loaded.changed()
            if not changed or (self._refused is not None and not self._refused.changed()):
                continue
            attempt = FileStamps(self.paths)
            try:
                await trial()
            except Exception as exc:
                self._refused = attempt
                log.warning(
                    "Changed certificate files cannot be used yet; the connection keeps the "
                    "files it loaded.",
                    extra={
                        "connection": self.name,
                        "files": [str(path) for path in changed],
                        "error": str(exc),
                    },
                )
                continue
            log.info(
                "Certificate files changed; reconnecting with them.",
                extra={"connection": self.name, "files": [str(path) for path in changed]},
            )
            return changed
