"""A totaliser read from a device, made into a value that never goes backwards.

A register of ``bits`` bits wraps to 0 after ``2**bits - 1`` (a rollover), and a device
that restarts counts from 0 again (a reset). Between two readings the counter moved by:

- ``raw - last`` when it went up;
- ``raw + 2**bits - last`` when it went down by more than it could wrap in one poll
  (a rollover: the wrapped step is at most ``max_step``);
- ``raw`` when it fell to less than half its last value (a reset: it counted ``raw`` since
  it restarted);
- nothing otherwise: a small fall (``1000`` then ``999``) is a misread or a noisy float
  totaliser, not a reset (taking it for one would add ``raw``, the whole count, to the
  total). It is refused and counted (``counter_backwards``) and the total holds; a device
  that truly restarted and counted past half its last value within one poll is caught by
  the confirmations below (those counts are lost, never added twice).

A step larger than ``max_step`` (default: half the register) is absurd (a misread, a
device swapped): it is refused and counted, and the total does not move. If the next
readings confirm the new level (``JUMP_CONFIRMATIONS`` in a row, each a plausible step from
the one before), the meter carries on from there without adding the jump; the same for a
small fall that the next readings confirm. Without ``bits`` (a counter read as a float,
e.g. over OPC UA) a fall is never a rollover.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from edge_agent.meters import state as saved
from edge_agent.meters.samples import Refusal, in_order, number_of
from edge_agent.meters.send import MeterReading, SendPolicy
from edge_agent.readings import Reading
from edge_agent.wire.plant import MAX_VALUE

JUMP_CONFIRMATIONS = 3
REGISTER_BITS = (16, 32, 64)


class CounterMeter:
    """A totaliser (``bits``: the register's width, None for a float counter)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        *,
        every_ns: int,
        bits: int | None = None,
        max_step: float | None = None,
        start: float = 0,
    ) -> None:
        if bits is not None and bits not in REGISTER_BITS:
            raise ValueError(f"bits must be one of {REGISTER_BITS}")
        if every_ns <= 0:
            raise ValueError("every_ns must be positive")
        self.name = name
        self.bits = bits
        self.modulus = None if bits is None else 2**bits
        default_step = None if bits is None else 2 ** (bits - 1)
        self.max_step = max_step if max_step is not None else default_step
        if self.max_step is not None and self.max_step <= 0:
            raise ValueError("max_step must be positive")
        self.total: float = start
        self.last_raw: float | None = None
        self.last_ns: int | None = None
        self.pending_raw: float | None = None  # a jump waiting for confirmation
        self.pending_count = 0
        self.rollovers = 0
        self.resets = 0
        self.rebased = 0  # confirmed jumps, carried on from without adding them
        self.behind = 0  # readings in a row before last_ns (the clock set back?)
        self.refused: Counter[Refusal] = Counter()
        self.send = SendPolicy(every_ns, deadband=None, send_unchanged=False)

    def feed(self, reading: Reading) -> MeterReading | None:
        """Use one reading of the device's counter; the value to send, if one is due."""
        raw = self._raw(reading)
        if raw is None:
            return None
        if not in_order(reading.time_ns, self.last_ns, self.refused, self.behind):
            self.behind += 1
            return None
        self.behind = 0
        self.last_ns = reading.time_ns
        if self.last_raw is None:
            self.last_raw = raw  # the first reading: a level to count from
        else:
            self._advance(raw)
        return self.send.offer(self.name, self.total, reading.time_ns)

    def _raw(self, reading: Reading) -> float | None:
        value = number_of(reading, self.refused)
        if value is None:
            return None
        if value < 0 or (self.modulus is not None and value >= self.modulus):
            self.refused[Refusal.OUT_OF_RANGE] += 1
            return None
        if self.modulus is not None:
            if value != int(value):
                self.refused[Refusal.NOT_AN_INTEGER] += 1
                return None
            return int(value)
        return value

    def _advance(self, raw: float) -> None:
        last = self.last_raw
        assert last is not None
        event = None
        if raw >= last:
            step = raw - last
        elif self.modulus is not None and self._plausible(raw + self.modulus - last):
            step, event = raw + self.modulus - last, "rollover"
        elif raw < last - raw:
            step, event = raw, "reset"
        else:
            self._refuse_jump(raw, Refusal.COUNTER_BACKWARDS)
            return
        if not self._plausible(step):
            self._refuse_jump(raw, Refusal.ABSURD_JUMP)
            return
        if self.total + step > MAX_VALUE:  # no plant data message could carry it
            self.refused[Refusal.OUT_OF_RANGE] += 1
            return
        self.total += step
        self.last_raw = raw
        self.pending_raw, self.pending_count = None, 0
        if event == "rollover":
            self.rollovers += 1
        elif event == "reset":
            self.resets += 1

    def _plausible(self, step: float) -> bool:
        return self.max_step is None or step <= self.max_step

    def _refuse_jump(self, raw: float, reason: Refusal) -> None:
        self.refused[reason] += 1
        pending = self.pending_raw
        if pending is not None and raw - pending >= 0 and self._plausible(raw - pending):
            self.pending_count += 1
        else:
            self.pending_count = 1
        self.pending_raw = raw
        if self.pending_count >= JUMP_CONFIRMATIONS:
            self.last_raw = raw
            self.rebased += 1
            self.pending_raw, self.pending_count = None, 0

    def state(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-ready data."""
        return {
            "schema": saved.STATE_SCHEMA,
            "kind": self.kind,
            "total": self.total,
            "last_raw": self.last_raw,
            "last_ns": self.last_ns,
            "pending_raw": self.pending_raw,
            "pending_count": self.pending_count,
            "rollovers": self.rollovers,
            "resets": self.resets,
            "rebased": self.rebased,
            "behind": self.behind,
            "refused": {str(k): v for k, v in self.refused.items()},
            "send": self.send.state(),
        }

    def restore(self, state: Any) -> None:
        """Carry on from a saved :meth:`state` (raises MeterStateError, changing nothing)."""
        checked = saved.checked(state, self.kind)
        behind = saved.optional_integer(checked, "behind") or 0
        total = saved.optional_number(checked, "total")
        if total is None:
            raise saved.MeterStateError("total: a number is needed")
        fields = (
            total,
            saved.optional_number(checked, "last_raw"),
            saved.optional_integer(checked, "last_ns"),
            saved.optional_number(checked, "pending_raw"),
            saved.integer(checked, "pending_count"),
            saved.integer(checked, "rollovers"),
            saved.integer(checked, "resets"),
            saved.integer(checked, "rebased"),
        )
        refused = saved.refusals(saved.counts(checked))
        send = saved.mapping(checked, "send")
        (
            self.total,
            self.last_raw,
            self.last_ns,
            self.pending_raw,
            self.pending_count,
            self.rollovers,
            self.resets,
            self.rebased,
        ) = fields
        self.refused = refused
        self.send.restore(send)
        self.behind = behind
