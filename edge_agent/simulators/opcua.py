"""The OPC UA part of the simulated plant: an asyncua server with scripted values and faults.

Importable by tests and the demo (:class:`OpcUaSimulator`) and runnable on its own
(``edge-agent simulate opcua --port P``). asyncua is imported only when a simulator starts,
because ``edge-agent`` loads this module to build its command line.

What it serves (namespace ``urn:edge-agent:demo-plant``, registered first, so ``ns=2``):

========================================  ========  ================
node                                      unit      normal profile
========================================  ========  ================
``ns=2;s=Line1.P101.BearingTemp``         degC      ~62 ±1
``ns=2;s=Line1.M201.WindingTemp``         degC      ~70 ±1
``ns=2;s=Line1.M201.Vibration``           mm/s      ~1.8 ±0.2
``ns=2;s=Bench.N00000`` ... (``nodes=``)  -         constant i
========================================  ========  ================

Faults, per node: :meth:`OpcUaSimulator.ramp` (a value ramping past a limit),
:meth:`~OpcUaSimulator.set_status` (a bad status such as ``BadSensorFailure``),
:meth:`~OpcUaSimulator.make_stale` (the node stops updating),
:meth:`~OpcUaSimulator.set_value` (a fixed value), :meth:`~OpcUaSimulator.clear_fault`.
Server-wide: :meth:`~OpcUaSimulator.stop` then :meth:`~OpcUaSimulator.start` (a server
restart on the same port: sessions and subscriptions are gone, the address space stays),
:meth:`~OpcUaSimulator.drop_connections` (a network blip: connections cut, sessions kept),
:meth:`~OpcUaSimulator.silence_subscriptions` (subscriptions deliver nothing, not even
keep-alives, while the connection stays up), ``max_nodes_per_read`` (advertised in
OperationLimits and enforced with ``BadTooManyOperations``).

The republish fix (LIBRARIES.md): asyncua's server answers a Republish for a message it
no longer has with an empty message, and the 2.1 client then loops on Republish at 100%
CPU. This simulator's subscription service answers ``BadMessageNotAvailable`` instead (and
``BadSubscriptionIdInvalid`` for an unknown subscription), as OPC UA Part 4 §5.13.6 says.
The patch is applied to this simulator's server instance only, never to asyncua's classes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from edge_agent.common.cancellation import stop_task
from edge_agent.simulators.control import (
    CONTROL_HOST,
    CannotListen,
    ControlServer,
    MapEntry,
    SetValue,
    add_control_arguments,
    bind_error,
    control_port,
    format_map,
    library_logs_quiet,
    print_control,
)

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:edge-agent:demo-plant"
ENDPOINT_PATH = "/edge-agent/demo/"
SERVER_APPLICATION_URI = "urn:edge-agent:simulator:opcua"
# asyncua builds big flat address spaces very slowly (10,000 children of one parent: 86 s);
# folders of at most this many variables keep it near 10 s (LIBRARIES.md).
FOLDER_SIZE = 500


@dataclass(frozen=True)
class Profile:
    """A normal value: ``base`` plus a slow sine of ``amplitude`` and a little noise."""

    base: float
    amplitude: float
    period_s: float = 60.0
    noise: float = 0.0


PLANT: dict[str, Profile] = {
    "Line1.P101.BearingTemp": Profile(62.0, 0.8, 90.0, 0.1),
    "Line1.M201.WindingTemp": Profile(70.0, 0.8, 120.0, 0.1),
    "Line1.M201.Vibration": Profile(1.8, 0.15, 45.0, 0.03),
}


@dataclass(frozen=True)
class SimulatorSecurity:
    """Serve secure endpoints with this certificate and key.

    ``policies`` are asyncua ``SecurityPolicyType`` names; the default serves
    Basic256Sha256 Sign and SignAndEncrypt. ``trusted_clients`` are the client certificates
    (PEM or DER) allowed to open a session; ``allow_none`` also serves an unsecured endpoint.
    """

    certificate: Path
    private_key: Path
    trusted_clients: Sequence[Path] = ()
    policies: Sequence[str] = (
        "Basic256Sha256_Sign",
        "Basic256Sha256_SignAndEncrypt",
    )
    allow_none: bool = False
    application_uri: str = SERVER_APPLICATION_URI

    def __post_init__(self) -> None:
        # Deprecated policies (CVE-2024-42512/42513) are never served, even in a simulator.
        deprecated = [p for p in self.policies if p.startswith(("Basic128Rsa15", "Basic256_"))]
        if deprecated:
            raise ValueError(f"deprecated security policies are not served: {deprecated}")


@dataclass
class _NodeState:
    """What drives one plant node right now."""

    node_id: Any
    profile: Profile | None
    mode: str = "profile"  # profile | manual | ramp | stale | status
    value: float = 0.0
    ramp_from: float = 0.0
    ramp_to: float = 0.0
    ramp_start: float = 0.0
    ramp_duration_s: float = 1.0
    source_time_ns: int = 0


@dataclass
class ServerCounters:
    """What the server saw, for tests and benchmarks that count requests."""

    read_requests: int = 0
    read_sizes: list[int] = field(default_factory=list)
    refused_reads: int = 0
    republish_requests: int = 0
    sessions_dropped: int = 0


class OpcUaSimulator:
    """An in-process OPC UA server for the demo plant, tests and benchmarks.

    ``start()`` builds the address space the first time (≈ 2.3 s for asyncua's own init,
    plus ≈ 1 s per 1,000 bench nodes) and listens; after ``stop()`` it listens again on the
    same port. ``stop()`` drops every connection, session and subscription like a server
    process that died, but keeps the address space; ``close()`` shuts everything down.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        nodes: int = 0,
        security: SimulatorSecurity | None = None,
        users: Mapping[str, str] | None = None,
        max_nodes_per_read: int = 0,
        update_interval_s: float = 0.5,
        seed: int = 1,
        republish_fix: bool = True,
        bench_update_interval_s: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.counters = ServerCounters()
        self._bench_nodes = nodes
        self._security = security
        self._users = dict(users) if users else None
        self._max_nodes_per_read = max_nodes_per_read
        self._update_interval_s = update_interval_s
        # 0: bench nodes hold their value; else every one changes this often (load tests).
        self._bench_update_interval_s = bench_update_interval_s
        self._bench_updater: asyncio.Task[None] | None = None
        self._rng = random.Random(seed)
        self._server: Any = None
        self._ns = 0
        self._plant: dict[str, _NodeState] = {}
        self._bench_ids: list[Any] = []
        self._updater: asyncio.Task[None] | None = None
        self._listening = False
        self._silenced = False
        # Off only to show the client bug the fix prevents; every other use keeps it on.
        self._republish_fix = republish_fix
        self._started_at = time.monotonic()
        #: Client certificates (DER) the server trusts; :meth:`trust_client` adds one.
        self.trusted_clients: set[bytes] = set()
        #: Client certificates (DER) it refused, first refusal first: a real server's
        #: "rejected" folder, where an administrator finds a new client to trust.
        self.rejected_clients: list[bytes] = []

    def trust_client(self, certificate: bytes | Path) -> None:
        """Trust a client certificate (DER bytes, or a PEM or DER file) from now on, as an
        administrator moving it from "rejected" to "trusted" would."""
        from edge_agent.sources.opcua.certs import load_certificate_der

        der = certificate if isinstance(certificate, bytes) else load_certificate_der(certificate)
        self.trusted_clients.add(der)
        if der in self.rejected_clients:
            self.rejected_clients.remove(der)

    # ------------------------------------------------------------------ lifecycle

    @property
    def endpoint(self) -> str:
        """``opc.tcp://host:port/edge-agent/demo/`` (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"opc.tcp://{host}:{self.port}{ENDPOINT_PATH}"

    @property
    def namespace_index(self) -> int:
        return self._ns

    @property
    def bench_node_ids(self) -> list[str]:
        """The bench nodes' ids as strings (``ns=2;s=Bench.N00000`` ...)."""
        return [f"ns={self._ns};s=Bench.N{i:05d}" for i in range(self._bench_nodes)]

    @staticmethod
    def node_id(name: str, namespace_index: int = 2) -> str:
        """``Line1.P101.BearingTemp`` → ``ns=2;s=Line1.P101.BearingTemp``."""
        return f"ns={namespace_index};s={name}"

    async def start(self) -> None:
        """Listen (building the server the first time)."""
        if self._listening:
            return
        if self._server is None:
            await self._build()
        else:
            await self._listen_again()
        self._listening = True
        if self._updater is None:
            self._updater = asyncio.create_task(self._update_loop(), name="opcua-sim-profiles")
        if self._bench_updater is None and self._bench_update_interval_s > 0 and self._bench_ids:
            self._bench_updater = asyncio.create_task(
                self._bench_update_loop(), name="opcua-sim-bench-updates"
            )
        log.info("OPC UA simulator listening.", extra={"endpoint": self.endpoint})

    async def stop(self) -> None:
        """Drop every connection, session and subscription; stop listening (restartable)."""
        if not self._listening:
            return
        self._listening = False
        server = self._server
        if server.bserver is not None:
            await server.bserver.stop()
        await self._drop_sessions()

    def drop_connections(self) -> None:
        """A network blip: every client connection is cut, but sessions and subscriptions
        survive on the server, so a client may reactivate its session and transfer its
        subscriptions (the path where asyncua's client used to loop on Republish)."""
        for transport in list(self._server.iserver.asyncio_transports):
            transport.close()

    async def close(self) -> None:
        """Shut the server down for good."""
        updaters = [task for task in (self._updater, self._bench_updater) if task is not None]
        self._updater = self._bench_updater = None
        for updater in updaters:
            await stop_task(updater)
        if self._server is not None:
            if not self._listening:
                # bserver is already closed; stop() would close it again.
                self._server.bserver = None
            await self._server.stop()
            self._server = None
        self._listening = False

    async def __aenter__(self) -> OpcUaSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ faults and values

    async def set_value(self, name: str, value: float) -> None:
        """Hold ``name`` (e.g. ``Line1.P101.BearingTemp``) at ``value`` with good status."""
        state = self._plant[name]
        state.mode = "manual"
        state.value = value
        await self._write(state, value)

    async def ramp(self, name: str, target: float, duration_s: float) -> None:
        """Move ``name`` linearly from its current value to ``target`` over ``duration_s``,
        then hold it there (the "bearing temperature ramps past 85 to ~97" fault)."""
        state = self._plant[name]
        state.ramp_from = state.value
        state.ramp_to = target
        state.ramp_start = time.monotonic()
        state.ramp_duration_s = max(duration_s, 0.001)
        state.mode = "ramp"

    async def set_status(self, name: str, status: str = "BadSensorFailure") -> None:
        """Give ``name`` a status code by name (value kept, updates stop until cleared)."""
        from asyncua import ua
        from asyncua.ua.status_codes import StatusCodes

        state = self._plant[name]
        state.mode = "status"
        code = getattr(StatusCodes, status)
        now = ua.DateTime.now(UTC)
        await self._server.write_attribute_value(
            state.node_id,
            ua.DataValue(
                Value=ua.Variant(state.value, ua.VariantType.Double),
                StatusCode=ua.StatusCode(code),
                SourceTimestamp=now,
                ServerTimestamp=now,
            ),
        )

    async def set_value_at(self, name: str, value: float, source_time: datetime) -> None:
        """Hold ``name`` at ``value`` with the SourceTimestamp ``source_time`` (a server whose
        clock is wrong, or one that says 9999-12-31): updates stop until cleared."""
        from asyncua import ua

        state = self._plant[name]
        state.mode = "manual"
        state.value = value
        state.source_time_ns = _epoch_ns(source_time)
        await self._server.write_attribute_value(
            state.node_id,
            ua.DataValue(
                Value=ua.Variant(value, ua.VariantType.Double),
                SourceTimestamp=cast(Any, source_time),  # asyncua types it as its DateTime
                ServerTimestamp=ua.DateTime.now(UTC),
            ),
        )

    def make_stale(self, name: str) -> None:
        """``name`` stops updating: same value, same timestamp, good status."""
        self._plant[name].mode = "stale"

    async def clear_fault(self, name: str) -> None:
        """Back to the normal profile (with good status from the next update)."""
        state = self._plant[name]
        state.mode = "profile"
        await self._write(state, self._profile_value(state))

    def value_of(self, name: str) -> float:
        """The value the simulator last wrote to ``name``."""
        return self._plant[name].value

    def source_time_ns_of(self, name: str) -> int:
        """The SourceTimestamp (ns since the epoch) of the last value written to ``name``."""
        return self._plant[name].source_time_ns

    async def set_max_nodes_per_read(self, limit: int, *, advertise: bool = True) -> None:
        """Refuse reads of more than ``limit`` nodes with ``BadTooManyOperations`` (0: no
        limit) and advertise it as OperationLimits MaxNodesPerRead; ``advertise=False``
        advertises "no limit" instead (a server whose limits lie)."""
        from asyncua import ua
        from asyncua.ua.object_ids import ObjectIds

        self._max_nodes_per_read = limit
        await self._server.write_attribute_value(
            ua.NodeId(
                ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
            ),
            ua.DataValue(ua.Variant(limit if advertise else 0, ua.VariantType.UInt32)),
        )

    def silence_subscriptions(self, silent: bool = True) -> None:
        """While silent, no subscription publishes anything (no data, no keep-alive) but
        connections and reads keep working: a subscription that looks alive and is not."""
        self._silenced = silent

    async def set_bench_value(self, index: int, value: float) -> None:
        from asyncua import ua

        await self._server.write_attribute_value(
            self._bench_ids[index], ua.DataValue(ua.Variant(value, ua.VariantType.Double))
        )

    # ------------------------------------------------------------------ building

    def _nid(self, name: str) -> Any:
        from asyncua import ua

        return ua.NodeId(ua.String(name), ua.Int16(self._ns))

    async def _build(self) -> None:
        from asyncua.server.server import Server

        server = Server()
        self._server = server
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}{ENDPOINT_PATH}")
        server.set_server_name("edge-agent simulated plant")
        self._ns = await server.register_namespace(NAMESPACE_URI)
        await self._apply_security(server)
        await self._build_address_space(server)
        self._patch_services(server)
        await self.set_max_nodes_per_read(self._max_nodes_per_read)
        await server.start()
        assert server.bserver is not None
        self.port = int(server.bserver.port)
        # The endpoint URL the server announces must carry the real port.
        server.set_endpoint(self.endpoint)

    async def _apply_security(self, server: Any) -> None:
        from asyncua import ua
        from asyncua.common.utils import ServiceError
        from asyncua.crypto.permission_rules import User, UserRole
        from asyncua.ua.status_codes import StatusCodes
        from cryptography.hazmat.primitives import serialization

        from edge_agent.sources.opcua.certs import load_certificate_der

        policies: list[Any] = []
        security = self._security
        if security is None or security.allow_none:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        if security is not None:
            await server.set_application_uri(security.application_uri)
            await server.load_certificate(load_certificate_der(security.certificate), format="der")
            key = security.private_key.read_bytes()
            await server.load_private_key(key, format="pem" if b"-----BEGIN" in key else "der")
            policies += [getattr(ua.SecurityPolicyType, name) for name in security.policies]
            self.trusted_clients |= {load_certificate_der(p) for p in security.trusted_clients}
            simulator = self

            async def validate(cert: Any, _app: Any) -> None:
                der = cert.public_bytes(serialization.Encoding.DER)
                if der not in simulator.trusted_clients:
                    if der not in simulator.rejected_clients:
                        simulator.rejected_clients.append(der)
                    raise ServiceError(StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)
        server.set_security_policy(policies)
        if self._users is not None:
            users = self._users

            class _Users:
                def get_user(
                    self,
                    iserver: Any,
                    username: str | None = None,
                    password: str | None = None,
                    certificate: Any = None,
                ) -> Any:
                    if username is not None and users.get(username) == password:
                        return User(role=UserRole.User, name=username)
                    return None

            server.iserver.set_user_manager(_Users())
            server.set_identity_tokens([ua.UserNameIdentityToken])
        else:
            server.set_identity_tokens([ua.AnonymousIdentityToken])

    async def _build_address_space(self, server: Any) -> None:
        from asyncua import ua

        objects = server.nodes.objects
        folders: dict[str, Any] = {}
        for name, profile in PLANT.items():
            parent_path = name.rsplit(".", 1)[0]
            parent = objects
            built = ""
            for part in parent_path.split("."):
                built = f"{built}.{part}" if built else part
                if built not in folders:
                    folders[built] = await parent.add_object(
                        self._nid(built), ua.QualifiedName(part, self._ns)
                    )
                parent = folders[built]
            node = await parent.add_variable(
                self._nid(name),
                ua.QualifiedName(name.rsplit(".", 1)[1], self._ns),
                ua.Variant(profile.base, ua.VariantType.Double),
            )
            state = _NodeState(node_id=node.nodeid, profile=profile, value=profile.base)
            self._plant[name] = state
        if self._bench_nodes:
            bench = await objects.add_folder(self._nid("Bench"), "Bench")
            for first in range(0, self._bench_nodes, FOLDER_SIZE):
                folder = await bench.add_folder(
                    self._nid(f"Bench.F{first // FOLDER_SIZE:03d}"),
                    f"F{first // FOLDER_SIZE:03d}",
                )
                for i in range(first, min(first + FOLDER_SIZE, self._bench_nodes)):
                    var = await folder.add_variable(
                        self._nid(f"Bench.N{i:05d}"),
                        ua.QualifiedName(f"N{i:05d}", self._ns),
                        ua.Variant(float(i), ua.VariantType.Double),
                    )
                    self._bench_ids.append(var.nodeid)
        for state in self._plant.values():
            await self._write(state, state.value)

    # ------------------------------------------------------------------ asyncua patches

    def _patch_services(self, server: Any) -> None:
        """Instance-level patches of this server's services (never asyncua's classes):
        the republish fix, request counting, MaxNodesPerRead enforcement, silencing."""
        from asyncua.common.utils import ServiceError
        from asyncua.ua.status_codes import StatusCodes

        iserver = server.iserver
        subscriptions = iserver.subscription_service
        simulator = self

        original_republish = subscriptions.republish

        def republish(params: Any) -> Any:
            simulator.counters.republish_requests += 1
            if not simulator._republish_fix:
                return original_republish(params)
            sub = subscriptions.subscriptions.get(params.SubscriptionId)
            if sub is None:
                raise ServiceError(StatusCodes.BadSubscriptionIdInvalid)
            message = sub.republish(params.RetransmitSequenceNumber)
            if not message.NotificationData:
                raise ServiceError(StatusCodes.BadMessageNotAvailable)
            return message

        subscriptions.republish = republish

        original_create = subscriptions.create_subscription

        async def create_subscription(*args: Any, **kwargs: Any) -> Any:
            result = await original_create(*args, **kwargs)
            sub = subscriptions.subscriptions[result.SubscriptionId]
            original_publish = sub.publish_results

            async def publish_results(requestdata: Any = None) -> bool:
                if simulator._silenced:
                    return False
                return bool(await original_publish(requestdata))

            sub.publish_results = publish_results
            return result

        subscriptions.create_subscription = create_subscription

        attributes = iserver.attribute_service
        original_read = attributes.read
        plant_ns = self._ns

        def read(params: Any) -> Any:
            to_read = params.NodesToRead
            if any(rv.NodeId.NamespaceIndex == plant_ns for rv in to_read):
                simulator.counters.read_requests += 1
                simulator.counters.read_sizes.append(len(to_read))
                limit = simulator._max_nodes_per_read
                if limit and len(to_read) > limit:
                    simulator.counters.refused_reads += 1
                    raise ServiceError(StatusCodes.BadTooManyOperations)
            return original_read(params)

        attributes.read = read

    async def _listen_again(self) -> None:
        from asyncua.server.binary_server_asyncio import BinaryServer

        server = self._server
        bserver = BinaryServer(server.iserver, self.host, self.port, server.limits)
        bserver.set_policies(server._policies)
        await bserver.start()
        server.bserver = bserver

    async def _drop_sessions(self) -> None:
        """Forget every client session and subscription, as a restarted server would."""
        iserver = self._server.iserver
        sessions = list(iserver._external_sessions.values())
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close_session(True)
        service = iserver.subscription_service
        if service.subscriptions:
            await service.delete_subscriptions(list(service.subscriptions))
        self.counters.sessions_dropped += len(sessions)

    # ------------------------------------------------------------------ profiles

    def _profile_value(self, state: _NodeState) -> float:
        profile = state.profile
        if profile is None:
            return state.value
        elapsed = time.monotonic() - self._started_at
        wave = profile.amplitude * math.sin(2 * math.pi * elapsed / profile.period_s)
        return profile.base + wave + self._rng.uniform(-profile.noise, profile.noise)

    async def _update_loop(self) -> None:
        while True:
            await asyncio.sleep(self._update_interval_s)
            now = time.monotonic()
            for state in self._plant.values():
                if state.mode == "profile":
                    await self._write(state, self._profile_value(state))
                elif state.mode == "ramp":
                    done = min(1.0, (now - state.ramp_start) / state.ramp_duration_s)
                    value = state.ramp_from + (state.ramp_to - state.ramp_from) * done
                    await self._write(state, value)

    async def _bench_update_loop(self) -> None:
        """Every bench node alternates between i and i + 0.5: one change each per interval."""
        from asyncua import ua

        flip = False
        while True:
            await asyncio.sleep(self._bench_update_interval_s)
            flip = not flip
            for index, node_id in enumerate(self._bench_ids):
                value = index + 0.5 if flip else float(index)
                await self._server.write_attribute_value(
                    node_id, ua.DataValue(ua.Variant(value, ua.VariantType.Double))
                )

    async def _write(self, state: _NodeState, value: float) -> None:
        from asyncua import ua

        state.value = value
        now = ua.DateTime.now(UTC)
        state.source_time_ns = _epoch_ns(now)
        await self._server.write_attribute_value(
            state.node_id,
            ua.DataValue(
                Value=ua.Variant(value, ua.VariantType.Double),
                SourceTimestamp=now,
                ServerTimestamp=now,
            ),
        )


def _epoch_ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


# ---------------------------------------------------------------------- command line


UNITS: dict[str, str] = {
    "Line1.P101.BearingTemp": "degC",
    "Line1.M201.WindingTemp": "degC",
    "Line1.M201.Vibration": "mm/s",
}


def point_map(nodes: int = 0) -> list[MapEntry]:
    """What the simulator serves: the plant's nodes, then the bench nodes (``--nodes``)."""
    entries = [
        MapEntry(
            name,
            OpcUaSimulator.node_id(name),
            "Double",
            UNITS.get(name, ""),
            f"profile {p.base:g} +-{p.amplitude:g} (sine over {p.period_s:g} s"
            + (f", noise {p.noise:g})" if p.noise else ")"),
        )
        for name, p in PLANT.items()
    ]
    if nodes:
        last = f"Bench.N{nodes - 1:05d}"
        entries.append(
            MapEntry(
                f"Bench.N00000 ... {last}",
                OpcUaSimulator.node_id("Bench.N00000") + " ...",
                "Double",
                "",
                "constant: node i holds i",
            )
        )
    return entries


def control_setter(simulator: OpcUaSimulator) -> SetValue:
    """``simulate set`` on this simulator: hold a plant node at a value, or release it."""

    async def set_value(name: str, value: float | bool | None) -> None:
        if name not in PLANT:
            raise KeyError(name)
        if value is None:
            await simulator.clear_fault(name)
        elif isinstance(value, bool):
            raise ValueError("a Double node takes a number")
        else:
            await simulator.set_value(name, value)

    return set_value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=14840, help="TCP port (0: any free port)")
    parser.add_argument(
        "--nodes", type=int, default=0, help="extra bench nodes ns=2;s=Bench.N00000... (value i)"
    )
    parser.add_argument(
        "--max-nodes-per-read",
        type=int,
        default=0,
        help="advertise and enforce this OperationLimits MaxNodesPerRead (0: no limit)",
    )
    parser.add_argument(
        "--bench-update",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="change every bench node this often (0: never; for subscription load tests)",
    )
    add_control_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; print the endpoint once listening."""
    if args.list:
        print(format_map(point_map(args.nodes)))
        return 0
    try:
        asyncio.run(_serve(args))
    except (CannotListen, OSError) as exc:  # OSError: a failure once serving
        print(f"edge-agent simulate opcua: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> None:
    simulator = OpcUaSimulator(
        args.host,
        args.port,
        nodes=args.nodes,
        max_nodes_per_read=args.max_nodes_per_read,
        bench_update_interval_s=args.bench_update,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with library_logs_quiet():
        try:
            await simulator.start()
        except OSError as exc:
            raise bind_error(args.host, args.port, exc) from exc
    print(f"OPC UA simulator listening on {simulator.endpoint}", flush=True)
    control = ControlServer(
        point_map(args.nodes),
        control_setter(simulator),
        CONTROL_HOST,
        control_port(args, simulator.port),
    )
    try:
        await control.start()
        print_control(control.port)
        await stop.wait()
    finally:
        await control.close()
        await simulator.close()
