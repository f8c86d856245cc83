"""OPC UA source: batched polling or subscriptions against one server, with security.

Importing this package does not import asyncua; :class:`OpcUaSource` lives in
``edge_agent.sources.opcua.source``, which the source factory imports only when an OPC UA
connection is configured (asyncua costs ≈ 0.4 s and ≈ 45 MiB to import).

Modules:

- ``source``: :class:`~edge_agent.sources.opcua.source.OpcUaSource` (the ``Source``): the
  session's lifecycle (security, connect, node ids, reconnect, outage reporting).
- ``poll``: poll mode (chunked Read requests on a schedule, overruns, the read limit).
- ``subscription``: subscription mode (monitored items, the bounded notification queue,
  the drain to the sink, the watchdog that rebuilds a silent or spinning session).
- ``values``: a DataValue as a ``Reading`` (quality, timestamps, scale, text refused).
- ``failures``: ``SessionLost``, transport errors, errors as text, stopping helper tasks.
- ``logger``: the one logger every module of the source logs through.
- ``status``: status code → quality, timestamps → nanoseconds (pure, no asyncua).
- ``security``: client security settings and the trusted-server-certificate check.
- ``files``: the certificate and key files a connection names (paths only, light).
- ``certs``: self-signed application certificates with ``cryptography``.
- ``client_pair``: the client certificate and key written for ``edge-agent certificate``.
- ``endpoints``: what a server offers (endpoints, user tokens, its certificate).
- ``refusals``: a failed connect as a refusal with its cause and fix.
- ``expiry``: the certificates' end of validity and the 30-day warning.
- ``errors``: the exceptions this package raises.
"""
