"""The pieces of the MaintainX API emulator (see :mod:`edge_agent.simulators.maintainx`)."""
