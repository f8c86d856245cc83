"""Pieces both the agent and the hub stand on (neither owns them)."""
