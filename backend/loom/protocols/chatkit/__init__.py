"""OpenAI's ChatKit protocol at ``POST /chatkit``, on the ``openai-chatkit`` server library.

A thin adapter: ChatKit requests become core calls (threads, runs, thread state, ingest) and
core run events become ChatKit stream events. See README.md beside this file.
"""

from loom.protocols.chatkit.router import build_server, router, uploads

__all__ = ["build_server", "router", "uploads"]
