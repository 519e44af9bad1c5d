"""Tracking-server launcher (python -m mlflow_server): arrives with its own issue; see README."""
