"""The outbox store's one logger."""

import logging

# One name for every module of the store, the name it had as one module: operators'
# log filters and the tests' captures select on it.
log = logging.getLogger("edge_agent.outbox.store")
