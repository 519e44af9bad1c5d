"""The ground floor: plumbing every other floor stands on, importing none of them.

Bad input (``errors``), the slides' published numbers (``slides``), datasets and their sources
(``data``, ``sources``), devices and seeds (``device``), progress bars (``progress``), MLflow run
plumbing (``tracking``, ``run_context``) and figures (``figures``).
"""
