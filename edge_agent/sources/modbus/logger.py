"""The Modbus source's one logger."""

import logging

# One name for every module of the source, the name it had as one module: operators'
# log filters and the tests' captures select on it.
logger = logging.getLogger("edge_agent.sources.modbus.source")
