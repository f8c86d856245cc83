"""Stand-ins for the plant and for MaintainX, used by tests, benchmarks and the demo."""
