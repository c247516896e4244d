"""Prefect flows, one per DVC stage, the end-to-end pipeline flow and the `segflow` CLI, all thin."""
