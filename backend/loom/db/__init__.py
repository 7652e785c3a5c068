"""Postgres: the pool, the embedded server for zero-config runs, and migrations."""
