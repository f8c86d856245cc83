"""What travels between the agent and the hub, checked the same way on both sides."""
