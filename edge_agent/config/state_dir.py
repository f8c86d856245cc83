"""Where a site's state folder is: ``storage.path``, relative to the site file's folder.

Includes and secret files have always been relative to the site file; ``storage.path``
was relative to the working directory, so the same file kept its outbox in a different
place depending on where it was started from. A folder at the old place is reported, not
moved: it may hold alerts, and which of two outboxes is right is the operator's call.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.models import SiteConfig
from edge_agent.config.site_paths import site_base_dir


def state_dir_of(config: SiteConfig, site_file: Path) -> Path:
    """The absolute state folder of ``config``, loaded from ``site_file``."""
    path = Path(config.storage.path)
    return path if path.is_absolute() else site_base_dir(site_file) / path


def state_left_behind(config: SiteConfig, site_file: Path) -> Path | None:
    """The folder the same relative ``storage.path`` named before (from the working
    directory), when it holds state and is not the folder used now; else ``None``."""
    path = Path(config.storage.path)
    if path.is_absolute():
        return None
    old = Path.cwd() / path
    new = state_dir_of(config, site_file)
    try:
        if old.resolve() == new.resolve() or not old.is_dir() or not any(old.iterdir()):
            return None
    except OSError:
        return None
    return old
