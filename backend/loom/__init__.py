"""Loom: a self-hosted runtime for stateful AI agents."""

__version__ = "0.1.0"
