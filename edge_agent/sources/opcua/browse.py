"""Walk an OPC UA address space for ``edge-agent discover opcua``: every variable under a
root, to a depth, with its data type, whether it can be read, and its engineering unit.

Batched: one Browse request per level and chunk, one Read for all data types and access
levels, one Browse and one Read for the EngineeringUnits properties, so a large server
costs a handful of round trips per level, not several per node.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError

from edge_agent.config.models import NODE_ID_RE

CHUNK: Final = 500
"""Nodes per Browse or Read request (under every server's limits we know of)."""
MAX_NODES: Final = 200_000
"""A walk stops here (a server with a loop in its hierarchy, or a whole plant at depth 50)."""
NUMERIC_TYPES: Final = {
    1: "Boolean",
    2: "SByte",
    3: "Byte",
    4: "Int16",
    5: "UInt16",
    6: "Int32",
    7: "UInt32",
    8: "Int64",
    9: "UInt64",
    10: "Float",
    11: "Double",
    26: "Number",
    27: "Integer",
    28: "UInteger",
    290: "Duration",
}
"""Data types a rule can compare (ns=0 ids); anything else is listed as skipped."""
TYPE_NAMES: Final = {
    12: "String",
    13: "DateTime",
    14: "Guid",
    15: "ByteString",
    21: "LocalizedText",
    22: "Structure",
    294: "UtcTime",
}

HAS_PROPERTY: Final = ua.NodeId(ua.Int32(ObjectIds.HasProperty))
LIMIT_NODES: Final = (  # the server's OperationLimits, 0 or absent: none
    ua.NodeId(ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse)),
    ua.NodeId(ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)),
)

Progress = Callable[[int, int], None]
"""Called with (nodes visited, variables found) as the walk goes."""


@dataclass(frozen=True)
class Variable:
    path: tuple[str, ...]  # browse names from below the root
    node: str  # NodeId string, as a sensor's ``node:``
    data_type: str
    unit: str | None


@dataclass
class Walk:
    variables: list[Variable] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    visited: int = 0
    truncated: bool = False


async def walk(
    client: Client,
    root: ua.NodeId,
    depth: int,
    patterns: Sequence[str] = (),
    progress: Progress | None = None,
    *,
    standard_nodes: bool = False,
    max_nodes_per_read: int = CHUNK,
) -> Walk:
    """Every variable under ``root`` down to ``depth`` levels whose browse path (``/``
    between names) matches one of ``patterns`` (all when empty). Below the root, nodes of
    namespace 0 (the standard's Server object and diagnostics) only with ``standard_nodes``.
    Requests stay within the server's OperationLimits and ``max_nodes_per_read``."""
    browse_chunk, read_chunk = await _chunks(client, max_nodes_per_read)
    result = Walk()
    seen: set[ua.NodeId] = {root}
    level: list[tuple[ua.NodeId, tuple[str, ...]]] = [(root, ())]
    candidates: list[tuple[ua.NodeId, tuple[str, ...]]] = []
    for _ in range(depth):
        if not level:
            break
        children: list[tuple[ua.NodeId, tuple[str, ...]]] = []
        for start in range(0, len(level), browse_chunk):
            chunk = level[start : start + browse_chunk]
            for (_parent, path), refs in zip(
                chunk, await _browse(client, [n for n, _ in chunk]), strict=True
            ):
                for ref in refs:
                    if _elsewhere(ref.NodeId) or ref.ReferenceTypeId == HAS_PROPERTY:
                        continue  # another server's; a property (a unit, a range) of its parent
                    node_id = _plain(ref.NodeId)
                    if node_id.NamespaceIndex == 0 and not standard_nodes:
                        continue
                    if node_id in seen:
                        continue  # visited: a loop, or a second parent
                    seen.add(node_id)
                    child = (node_id, (*path, ref.BrowseName.Name or node_id.to_string()))
                    children.append(child)
                    if ref.NodeClass == ua.NodeClass.Variable:
                        candidates.append(child)
            result.visited += len(chunk)
            if progress is not None:
                progress(result.visited, len(candidates))
            if len(seen) > MAX_NODES:
                result.truncated = True
                break
        if result.truncated:
            break
        level = children
    wanted = [c for c in candidates if _matches("/".join(c[1]), patterns)]
    await _describe(client, wanted, result, (browse_chunk, read_chunk))
    return result


async def _chunks(client: Client, max_nodes_per_read: int) -> tuple[int, int]:
    """Nodes per Browse and per Read: at most :data:`CHUNK`, and within what the server
    advertises (a PLC's server refuses more with BadTooManyOperations)."""
    chunks = [CHUNK, min(CHUNK, max_nodes_per_read)]
    try:
        values = await _read(client, LIMIT_NODES, AttributeIds.Value, CHUNK)
    except UaError:  # no limits to be read: ours
        return chunks[0], chunks[1]
    for i, value in enumerate(values):
        limit = value.Value.Value if _good(value) and value.Value else None
        if isinstance(limit, int) and limit > 0:
            chunks[i] = min(chunks[i], limit)
    return chunks[0], chunks[1]


def _plain(node: ua.NodeId) -> ua.NodeId:
    """A reference's ExpandedNodeId as the NodeId it names on this server."""
    return ua.NodeId(node.Identifier, node.NamespaceIndex, node.NodeIdType)


def _elsewhere(node: ua.NodeId) -> bool:
    """A reference to another server (or a namespace named by URI only): not ours to read."""
    return isinstance(node, ua.ExpandedNodeId) and bool(node.NamespaceUri or node.ServerIndex)


def _good(value: ua.DataValue) -> bool:
    return value.StatusCode is None or value.StatusCode.is_good()


def _matches(path: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(path, p) for p in patterns)


async def _browse(
    client: Client, nodes: Sequence[ua.NodeId], reference: int = ObjectIds.HierarchicalReferences
) -> list[list[ua.ReferenceDescription]]:
    """The forward references of each node, following continuation points."""
    descriptions = []
    for node in nodes:
        desc = ua.BrowseDescription()
        desc.NodeId = node
        desc.BrowseDirection = ua.BrowseDirection.Forward
        desc.ReferenceTypeId = ua.NodeId(ua.Int32(reference))
        desc.IncludeSubtypes = True
        desc.NodeClassMask = ua.NodeClass.Object | ua.NodeClass.Variable
        desc.ResultMask = ua.BrowseResultMask.All
        descriptions.append(desc)
    parameters = ua.BrowseParameters()
    parameters.View = ua.ViewDescription()
    parameters.RequestedMaxReferencesPerNode = 0
    parameters.NodesToBrowse = descriptions
    results = await client.uaclient.browse(parameters)
    found: list[list[ua.ReferenceDescription]] = []
    for result in results:
        refs = list(result.References or [])
        point = result.ContinuationPoint
        for _ in range(1000):  # bounded: a server that never ends its continuation
            if not point:
                break
            parameters_next = ua.BrowseNextParameters()
            parameters_next.ReleaseContinuationPoints = False
            parameters_next.ContinuationPoints = [point]
            [more] = await client.uaclient.browse_next(parameters_next)
            refs.extend(more.References or [])
            point = more.ContinuationPoint
        found.append(refs)
    return found


async def _read(
    client: Client, nodes: Sequence[ua.NodeId], attribute: AttributeIds, chunk: int
) -> list[ua.DataValue]:
    values: list[ua.DataValue] = []
    for start in range(0, len(nodes), chunk):
        params = ua.ReadParameters()
        for node in nodes[start : start + chunk]:
            rv = ua.ReadValueId()
            rv.NodeId = node
            rv.AttributeId = attribute
            params.NodesToRead.append(rv)
        values.extend(await client.uaclient.read(params))
    return values


async def _describe(
    client: Client,
    candidates: Sequence[tuple[ua.NodeId, tuple[str, ...]]],
    result: Walk,
    chunks: tuple[int, int],
) -> None:
    """Data type, readability and unit of each candidate; the others go to ``skipped``."""
    nodes = [node for node, _ in candidates]
    types = await _read(client, nodes, AttributeIds.DataType, chunks[1])
    access = await _read(client, nodes, AttributeIds.AccessLevel, chunks[1])
    keep: list[tuple[ua.NodeId, tuple[str, ...], str]] = []
    for (node, path), type_value, access_value in zip(candidates, types, access, strict=True):
        shown = "/".join(path)
        data_type = type_value.Value.Value if _good(type_value) and type_value.Value else None
        if not isinstance(data_type, ua.NodeId):
            result.skipped.append((shown, "its data type cannot be read"))
            continue
        number = data_type.Identifier if data_type.NamespaceIndex == 0 else None
        if not isinstance(number, int) or number not in NUMERIC_TYPES:
            name = (
                TYPE_NAMES.get(number, data_type.to_string())
                if isinstance(number, int)
                else data_type.to_string()
            )
            result.skipped.append((shown, f"type {name} is not a number or a boolean"))
            continue
        if not NODE_ID_RE.match(node.to_string()):  # e.g. a line break in an s= id
            result.skipped.append((shown, "its node id cannot be written in a site file"))
            continue
        level = access_value.Value.Value if _good(access_value) and access_value.Value else None
        if not isinstance(level, int) or not level & ua.AccessLevel.CurrentRead.mask:
            result.skipped.append((shown, "not readable (AccessLevel)"))
            continue
        keep.append((node, path, NUMERIC_TYPES[number]))
    units = await _units(client, [node for node, _, _ in keep], chunks)
    result.variables = [
        Variable(path, node.to_string(), data_type, unit)
        for (node, path, data_type), unit in zip(keep, units, strict=True)
    ]


async def _units(
    client: Client, nodes: Sequence[ua.NodeId], chunks: tuple[int, int]
) -> list[str | None]:
    """Each variable's EngineeringUnits display name, where it has that property."""
    property_of: dict[int, ua.NodeId] = {}
    for start in range(0, len(nodes), chunks[0]):
        chunk = nodes[start : start + chunks[0]]
        refs = await _browse(client, chunk, ObjectIds.HasProperty)
        for offset, found in enumerate(refs):
            for ref in found:
                if ref.BrowseName.Name == "EngineeringUnits":
                    property_of[start + offset] = _plain(ref.NodeId)
    units: list[str | None] = [None] * len(nodes)
    indexes = sorted(property_of)
    values = await _read(client, [property_of[i] for i in indexes], AttributeIds.Value, chunks[1])
    for index, value in zip(indexes, values, strict=True):
        info = value.Value.Value if _good(value) and value.Value else None
        text = getattr(getattr(info, "DisplayName", None), "Text", None)
        if isinstance(text, str) and text.strip():
            units[index] = text.strip()
    return units
