"""The fault suite's shared peers: the service tests' background loop and Modbus plant
(module-scoped there, so one plant per fault module)."""

from tests.service.conftest import background, plant

__all__ = ["background", "plant"]
