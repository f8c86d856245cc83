"""Recent readings kept on the gateway (``history:`` in the site file)."""
