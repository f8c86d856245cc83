"""The `assets:` and `sensors:` sections: a sensor is read through a connection by an
OPC UA node id or a Modbus register."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config.models.base import (
    NODE_ID_RE,
    Model,
)
from edge_agent.config.models.meters import AssetDowntime
from edge_agent.config.units import Duration


class Asset(Model):
    name: str
    maintainx_id: Annotated[int, Field(ge=1)] | None = None
    location_id: Annotated[int, Field(ge=1)] | None = None
    downtime: AssetDowntime | None = None  # issue 14, docs/meters.md


class RegisterTable(StrEnum):
    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bits(self) -> bool:
        return self in (RegisterTable.COIL, RegisterTable.DISCRETE)


class RegisterType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


REGISTER_WORDS: dict[RegisterType, int] = {
    RegisterType.BOOL: 1,
    RegisterType.INT16: 1,
    RegisterType.UINT16: 1,
    RegisterType.INT32: 2,
    RegisterType.UINT32: 2,
    RegisterType.INT64: 4,
    RegisterType.UINT64: 4,
    RegisterType.FLOAT32: 2,
    RegisterType.FLOAT64: 4,
}


class Register(Model):
    table: RegisterTable
    address: Annotated[int, Field(ge=0, le=65535)]  # 0-based protocol address
    type: RegisterType | None = None  # default: bool on coil/discrete, uint16 otherwise
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    length: Annotated[int, Field(ge=1, le=250)] | None = None  # characters, for strings
    # One bit of a holding/input register, 0 = least significant (bool sensors).
    bit: Annotated[int, Field(ge=0, le=15)] | None = None

    @field_validator("address", mode="before")
    @classmethod
    def _not_modicon_numbering(cls, value: Any) -> Any:
        # 400021 is the 6-digit Modicon way to write holding register 21 (address 20).
        if isinstance(value, int) and not isinstance(value, bool) and value > 65535:
            text = str(value)
            tables = {"4": "holding", "3": "input", "1": "discrete", "0": "coil"}
            if len(text) == 6 and text[0] in tables and int(text[1:]) >= 1:
                raise ValueError(
                    f"{value} looks like a 1-based register number ({tables[text[0]]} "
                    f"register {int(text[1:])}); write the 0-based protocol address "
                    f"{int(text[1:]) - 1}"
                )
        return value

    @property
    def value_type(self) -> RegisterType:
        if self.type is not None:
            return self.type
        return RegisterType.BOOL if self.table.is_bits else RegisterType.UINT16

    @property
    def count(self) -> int:
        """How many registers (or bits) the value spans."""
        kind = self.value_type
        if self.table.is_bits:
            return 1
        if kind is RegisterType.STRING:
            return ((self.length or 0) + 1) // 2
        return REGISTER_WORDS[kind]

    @model_validator(mode="after")
    def _type_fits_table(self) -> Register:
        kind = self.value_type
        if self.table.is_bits and kind is not RegisterType.BOOL:
            raise ValueError(
                f"a {self.table.value} holds single bits: its type is bool, not {kind.value}"
            )
        if not self.table.is_bits and kind is RegisterType.BOOL and self.bit is None:
            raise ValueError(
                f"a {self.table.value} register holds 16 bits: use a numeric type, or bool "
                "with `bit:` to pick one bit"
            )
        if self.bit is not None and kind is not RegisterType.BOOL:
            raise ValueError("`bit:` picks one bit and goes with type bool")
        if kind is RegisterType.STRING and self.length is None:
            raise ValueError("a string register needs `length:` (characters)")
        if kind is not RegisterType.STRING and self.length is not None:
            raise ValueError("`length:` is for string registers only")
        if self.address + self.count - 1 > 65535:
            raise ValueError(f"address {self.address} + {self.count} registers runs past 65535")
        return self


class Scale(Model):
    """value = raw × factor + offset."""

    factor: float = 1.0
    offset: float = 0.0


class Sensor(Model):
    connection: str
    unit: str | None = None
    description: str = ""
    node: str | None = None  # OPC UA
    register_: Annotated[Register | None, Field(alias="register")] = None  # Modbus
    unit_id: Annotated[int, Field(ge=0, le=255)] | None = None  # overrides the connection's
    scale: Scale | None = None
    stale_after: Duration | None = None
    # Digits after the point in work-order texts (default: from the scale factor's, else
    # 2 for a fractional value); the messages keep the full value.
    decimals: Annotated[int, Field(ge=0, le=10)] | None = None

    @field_validator("node")
    @classmethod
    def _node_id_is_well_formed(cls, value: str | None) -> str | None:
        if value is not None and not NODE_ID_RE.match(value):
            raise ValueError(
                f"{value!r} is not an OPC UA node id; write e.g. ns=2;s=Line1.P101.Temp "
                "or ns=3;i=1001"
            )
        return value

    @model_validator(mode="after")
    def _one_address(self) -> Sensor:
        if self.node is None and self.register_ is None:
            raise ValueError("a sensor needs `node:` (OPC UA) or `register:` (Modbus)")
        if self.node is not None and self.register_ is not None:
            raise ValueError("a sensor has either `node:` (OPC UA) or `register:` (Modbus)")
        return self
