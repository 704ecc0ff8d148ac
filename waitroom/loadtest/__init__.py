"""``waitroom loadtest``: simulated callers and providers against a running server, with a report."""
