"""One training run: validated configs, data, models, pure losses, the family tasks, the loop."""
