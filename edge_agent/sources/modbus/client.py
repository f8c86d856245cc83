"""The pymodbus client a connection needs, and what one of its requests can come back as:
data, a Modbus exception code, a silent unit or a lost transport.

pymodbus is imported only when a client is built: importing the package stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.config.models import ModbusRtu, ModbusTcp, RegisterTable
from edge_agent.errors import EdgeAgentError

ILLEGAL_DATA_ADDRESS = "illegal data address"
# Modbus exception codes (Modbus Application Protocol v1.1b3 §7).
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: ILLEGAL_DATA_ADDRESS,
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# A gateway answering these means the unit behind it is silent: treat it as a timeout.
GATEWAY_SILENT = (10, 11)
# The pymodbus client method that reads each table.
READ_METHODS: dict[RegisterTable, str] = {
    RegisterTable.COIL: "read_coils",
    RegisterTable.DISCRETE: "read_discrete_inputs",
    RegisterTable.HOLDING: "read_holding_registers",
    RegisterTable.INPUT: "read_input_registers",
}


class UnitSilent(EdgeAgentError):
    """The unit did not answer within the timeout."""


class ConnectionLost(EdgeAgentError):
    """The transport is gone; every remaining sensor of the cycle reads bad."""


@dataclass
class Answer:
    """A response: data (registers or bits as ints) or a Modbus exception code."""

    time_ns: int
    data: tuple[int, ...] = ()
    exception_code: int | None = None


def connection_exception() -> type[Exception]:
    """pymodbus's "no connection" error. A function, named in an ``except`` clause: the
    clause runs it only when a request raised, so a request pays no import statement."""
    from pymodbus.exceptions import ConnectionException

    return ConnectionException


def io_exception() -> type[Exception]:
    """pymodbus's "no answer" error (a timeout, or the transport closed meanwhile)."""
    from pymodbus.exceptions import ModbusIOException

    return ModbusIOException


def describe_target(connection: ModbusTcp | ModbusRtu) -> str:
    """Where the connection goes: ``host:port`` or the serial device."""
    if isinstance(connection, ModbusTcp):
        return f"{connection.host}:{connection.port}"
    return connection.device


def make_client(name: str, connection: ModbusTcp | ModbusRtu, timeout_s: float) -> Any:
    """A pymodbus client for ``connection`` that never reconnects or gives up on its own."""
    from pymodbus import FramerType
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    conn = connection
    # reconnect_delay=0: pymodbus must not reconnect on its own; the source does,
    # with jitter, and counts the attempts.
    if isinstance(conn, ModbusTcp):
        client: Any = AsyncModbusTcpClient(
            conn.host,
            port=conn.port,
            framer=FramerType.SOCKET if conn.framer == "socket" else FramerType.RTU,
            name=name,
            timeout=timeout_s,
            retries=conn.retries,
            reconnect_delay=0,
        )
    else:
        client = AsyncModbusSerialClient(
            conn.device,
            framer=FramerType.RTU,
            baudrate=conn.baudrate,
            bytesize=conn.bytesize,
            parity=conn.parity,
            stopbits=conn.stopbits,
            name=name,
            timeout=timeout_s,
            retries=conn.retries,
            reconnect_delay=0,
        )
    # pymodbus drops the link after retries+3 unanswered requests in a row; a silent
    # unit must not take the healthy ones down with it, so the source decides.
    client.set_max_no_responses(1_000_000)
    return client
