"""Test doubles for external services (e.g. a fake OpenAI HTTP API)."""
