"""A Modbus RTU device on a serial line, for tests: ``python rtu_device.py PORT``.

pymodbus' own RTU server on ``PORT`` (one end of a socat pty pair), unit 1, holding
registers 0–99 holding ``4200 + address``. Prints ``ready`` once it serves."""

from __future__ import annotations

import asyncio
import sys


async def serve(port: str) -> None:
    from pymodbus import FramerType
    from pymodbus.server import ModbusSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    registers = SimData(
        0, count=100, values=[4200 + a for a in range(100)], datatype=DataType.REGISTERS
    )
    bits = SimData(0, count=16, values=False, datatype=DataType.BITS)
    device = SimDevice(id=1, simdata=([bits], [bits], [registers], [registers]))
    server = ModbusSerialServer(device, framer=FramerType.RTU, port=port, baudrate=19200)
    await server.serve_forever(background=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
