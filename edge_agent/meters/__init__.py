"""Meters: readings in, meter values for MaintainX out (issue 14, see ``docs/meters.md``).

A stage beside the rules, and as pure: no I/O, no asyncio, time taken from the readings.
Each meter refuses what it cannot trust (counted by :class:`Refusal`), keeps its state as
JSON-ready data (``state()`` / ``restore()``), and says when a value is due to be sent.
"""

from edge_agent.meters.counter import CounterMeter
from edge_agent.meters.gauge import GaugeMeter
from edge_agent.meters.run_hours import NS_PER_HOUR, RunHours
from edge_agent.meters.samples import MeterStateError, Refusal
from edge_agent.meters.send import MeterReading, SendPolicy
from edge_agent.meters.starts import StartsMeter

__all__ = [
    "NS_PER_HOUR",
    "CounterMeter",
    "GaugeMeter",
    "MeterReading",
    "MeterStateError",
    "Refusal",
    "RunHours",
    "SendPolicy",
    "StartsMeter",
]
