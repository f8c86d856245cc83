"""Modbus TCP and RTU: the read plan, register decoding, and the polling source."""
