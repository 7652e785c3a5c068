"""Tests of loom.tools (the registry, each tool against the local fake APIs, the safe fetcher)."""
