"""Agent tools: one module per tool, a registry keyed by stable ids.

Public entry points live in :mod:`loom.tools.base` (``ToolContext``, ``ToolSpec``,
``Retriever``, ``RetrievedChunk``) and :mod:`loom.tools.registry` (``ToolRegistry``,
``default_tool_registry``, ``normalize_tool_entry``).
"""
