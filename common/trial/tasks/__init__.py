"""Per-family training tasks: what one epoch, one evaluation and one figure set mean."""
# Each family's task is found through its record in common/trial/families.py.
