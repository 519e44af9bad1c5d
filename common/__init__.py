"""Models, losses, data, metrics, tracking, the sweep engine and the report."""
