"""Modbus TCP and RTU: the read plan, register decoding, and the polling source.

Modules:

- ``source``: :class:`~edge_agent.sources.modbus.source.ModbusSource` (the ``Source``):
  the poll cycle, per-unit skipping, refused addresses and the plan they teach.
- ``client``: the pymodbus client built from config, and what a request comes back as.
- ``plan``: sensors coalesced into few block reads.
- ``refused``: the sensors and gaps a device refused, and the plan that leaves them out.
- ``decode``: one sensor's registers as a value; ``block_decode``: a whole block at once,
  and the cache of compiled block decoders.
- ``logger``: the one logger every module of the source logs through.
"""
