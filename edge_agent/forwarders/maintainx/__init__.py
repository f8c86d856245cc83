"""The site's direct-to-MaintainX forwarder (``forwarder.py``) and its work-order journal
lines (``journal.py``). The client, ledger and sync it drives live in
:mod:`edge_agent.maintainx`, which the hub shares."""
