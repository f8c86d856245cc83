"""One module per ``edge-agent`` subcommand (see ``edge_agent.cli``)."""
