"""The one base of every exception edge-agent raises on purpose, so that a caller (a command,
the supervisor, an embedding program) can tell "edge-agent refused or failed" from a bug or a
library's surprise with one ``except EdgeAgentError``. Errors from libraries are translated
into these at the boundary (``raise ... from exc``). A few also keep the built-in they always
were (``ValueError``, ``OSError``) as a second base, so existing ``except`` clauses still hold.

::

    EdgeAgentError
    ├── configuration (validate on load: nothing connects)
    │   ├── ConfigError               config/diagnostics.py: a site or hub file refused, with
    │   │                             file, line and field
    │   ├── SecretError               config/secrets.py: a ${ENV} or file: reference unresolved
    │   ├── MapError                  config/modbus_map.py: a register map file refused
    │   ├── FileProblem               config/tls_files.py: a certificate or key unreadable
    │   │   └── FileMissing           it does not exist (yet)
    │   └── ForwarderConfigError      forwarders/__init__.py: the forwarding section is unusable
    ├── shared layer
    │   ├── SchemaVersionError        common/schema_version.py (also ValueError)
    │   ├── NewerFormatError          common/schema_version.py: a later release's state file
    │   ├── ListenError               common/http.py: a listen address cannot be bound
    │   │                             (also OSError)
    │   ├── HealthError               common/health.py
    │   ├── MqttError                 common/mqtt_errors.py (raised by common/mqtt_link.py)
    │   │   ├── MqttConfigError       the broker refused the settings (TLS, credentials)
    │   │   ├── MqttDisconnected      the link dropped; what was unconfirmed is resent
    │   │   └── MqttPublishRefused    the broker refused one publish
    │   ├── WireError                 wire/alert.py: a value the alert schema forbids
    │   │                             (also ValueError)
    │   ├── BadMessage                wire/result.py: a hub result or presence off contract
    │   │                             (also ValueError)
    │   ├── PlantMessageError         wire/plant.py: a meter reading or asset status off
    │   │                             contract (also ValueError)
    │   └── BadCommand                wire/commands.py: an alarm command or its result
    │                                 framed off contract (also ValueError)
    ├── sources
    │   ├── OpcUaError                sources/opcua/errors.py
    │   │   ├── OpcUaConnectError
    │   │   ├── OpcUaSecurityError
    │   │   │   └── OpcUaRefused
    │   │   └── SessionLost           sources/opcua/failures.py
    │   ├── PairExists                sources/opcua/client_pair.py
    │   ├── DecodeError               sources/modbus/decode.py (also ValueError)
    │   ├── UnitSilent                sources/modbus/client.py: a unit did not answer in time
    │   └── ConnectionLost            sources/modbus/client.py: the transport is gone
    ├── rules
    │   ├── TraceError                rules/trace.py (also ValueError)
    │   ├── SnapshotError             rules/snapshot.py (also ValueError)
    │   ├── CommandError              rules/lifecycle.py: an alarm command refused as
    │   │                             written (also ValueError)
    │   └── StateStoreError           rules/store.py (also OSError)
    ├── MeterStateError               meters/samples.py: a saved meter state refused
    │                                 (also ValueError)
    ├── HistoryError                  history/store.py
    │   └── HistoryCorrupt
    ├── outbox
    │   ├── OutboxError               outbox/errors.py
    │   │   ├── OutboxFull            over storage.max_bytes: refused, nothing dropped
    │   │   ├── PayloadRejected       not JSON-safe: refused before it is written
    │   │   │   └── PayloadTooLarge   over the largest payload
    │   │   ├── OutboxCorrupt         a row that is not plain JSON: refused
    │   │   │   └── OutboxDamaged     the file itself is damaged (salvage can recover it)
    │   │   └── RecoverBusy           outbox/salvage.py
    │   ├── StoreUnavailable          outbox/integrity.py
    │   └── UnsafeRowError            outbox/jsondisk.py
    ├── forwarders
    │   └── InvalidMessage            forwarders/maintainx/forwarder.py: an outbox item that
    │                                 is no alert (also ValueError)
    ├── MaintainX (shared by the direct forwarder and the hub)
    │   ├── MaintainXError            maintainx/errors.py (its own tree is drawn there)
    │   │   ├── CredentialsRejected
    │   │   ├── BadRequest
    │   │   │   └── NotFound
    │   │   ├── Misconfigured
    │   │   ├── RateLimited
    │   │   ├── TransientError
    │   │   └── OutcomeUnknown
    │   ├── LedgerError               maintainx/ledger.py: the work order ledger's file
    │   └── MeterLedgerError          maintainx/meters.py: the created meter/trigger ids' file
    ├── the agent
    │   ├── AgentError                service/wiring.py
    │   ├── ControlSocketError        service/control_socket.py: the control socket cannot
    │   │                             be made (also OSError)
    │   └── StateFolderInUse          service/state_lock.py: another agent holds the folder
    ├── the hub
    │   ├── HubError                  hub/app.py
    │   ├── StoreError                hub/store.py: retried, nothing acknowledged
    │   │   └── StoreRejected         these values never fit: a poison message
    │   ├── PublishFailed             hub/consumer.py
    │   ├── BatchAbandoned            hub/plant_batches.py: the hub stopped before a reading
    │   │                             was posted (the agent resends it)
    │   ├── SubscriptionError         hub/subscriptions.py: MaintainX webhooks
    │   ├── HubCommandError           hub/commands.py: an alarm command not published
    │   └── MigrationError            hub/migrate.py
    └── commands and the demo
        ├── ReplayError               commands/replay.py
        ├── TraceInputError           commands/trace_input.py
        └── DemoUnavailable           demo/mqtt.py

Private exceptions that carry control flow inside one module (``_BadCell``, ``_Refused``…)
and the simulators' own (test stand-ins) stay outside the tree.
"""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every exception edge-agent raises on purpose (the tree is in the module doc)."""
