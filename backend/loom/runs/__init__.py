"""Runs: the executor, typed stream events, SSE encoding and the event broker."""
