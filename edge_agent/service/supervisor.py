"""Every long-running task of the agent is started here, so that none can end unnoticed.

A task of the pipeline (a source, the rules, the forwarder, the reload watcher, the
watchdog...) runs until it is stopped. One that ends on its own, by returning, raising or
being cancelled by someone else, leaves the agent without that stage: polling, alarms or
delivery stop while the process looks alive. The supervisor turns that into a process exit:
it logs the task and its error, sets :attr:`Supervisor.failed` (``Service.run`` then saves
the rule state, stops in order and exits with :data:`EXIT_TASK_FAILED`), and from that
moment ``/healthz`` fails and the systemd watchdog is no longer pinged. systemd
(``Restart=always``) or Docker (``restart: unless-stopped``) starts a fresh process.

Ends are expected only when they were asked for: :meth:`Supervisor.stop` for one task,
:meth:`Supervisor.shutdown` for all of them (the agent is stopping), or a ``one_shot`` task
that returns (a SIGHUP reload).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_agent.redaction import redact
from edge_agent.service.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

EXIT_TASK_FAILED = 70
"""The exit status after a task ended on its own (``EX_SOFTWARE`` in sysexits.h): distinct
from 2 (the site file has errors) and 1 (the agent could not start)."""


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """A task that ended without being asked to, and how."""

    task: str
    error: str


class Supervisor:
    """Starts the agent's tasks and notices any that ends unexpectedly."""

    def __init__(self) -> None:
        self.failures: list[TaskFailure] = []
        self._failed: asyncio.Event | None = None
        self._expected: set[asyncio.Task[Any]] = set()
        self._one_shot: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def failed(self) -> asyncio.Event:
        """Set when the first task ends unexpectedly (created on first use, in the loop)."""
        if self._failed is None:
            self._failed = asyncio.Event()
            if self.failures:
                self._failed.set()
        return self._failed

    @property
    def alive(self) -> bool:
        """False from the moment a task has ended unexpectedly."""
        return not self.failures

    def start(
        self, coro: Coroutine[Any, Any, T], name: str, *, one_shot: bool = False
    ) -> asyncio.Task[T]:
        """Run ``coro`` as the task ``name``; it must run until stopped, unless ``one_shot``
        (then only an error or a foreign cancellation is a failure)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        if one_shot:
            self._one_shot.add(task)
        task.add_done_callback(self._ended)
        return task

    async def stop(self, task: asyncio.Task[Any], timeout_s: float) -> bool:
        """Cancel ``task`` on purpose and wait up to ``timeout_s``; True if it ended."""
        self._expected.add(task)
        return await cancel_and_wait(task, timeout_s)

    def expect_end(self, task: asyncio.Task[Any]) -> None:
        """``task`` is about to end on its own because it was asked to (a drain)."""
        self._expected.add(task)

    def shutdown(self) -> None:
        """The agent is stopping: every end from now on is expected."""
        self._stopping = True

    def _ended(self, task: asyncio.Task[Any]) -> None:
        expected = task in self._expected or self._stopping
        one_shot = task in self._one_shot
        self._expected.discard(task)
        self._one_shot.discard(task)
        if task.cancelled():
            if expected:
                return
            error = "cancelled"
            exc: BaseException | None = None
        else:
            exc = task.exception()
            if exc is None and (expected or one_shot):
                return
            if exc is not None and expected:
                # Asked to stop and failed on its way out: worth a line, not an exit.
                log.error(
                    "Task ended with an error while stopping.",
                    extra={"task": task.get_name(), "error": redact(repr(exc))},
                    exc_info=exc,
                )
                return
            error = "returned" if exc is None else redact(f"{type(exc).__name__}: {exc}")
        self.failures.append(TaskFailure(task.get_name(), error))
        log.critical(
            "Task ended unexpectedly; the agent saves its state and exits for its "
            "supervisor to restart it.",
            extra={"task": task.get_name(), "error": error, "exit_code": EXIT_TASK_FAILED},
            exc_info=exc,
        )
        self.failed.set()

    def reasons(self) -> list[str]:
        """One line per failed task, for ``/healthz`` and ``/readyz``."""
        return [f"task {f.task} ended unexpectedly ({f.error})" for f in self.failures]


__all__ = ["EXIT_TASK_FAILED", "Supervisor", "TaskFailure"]
