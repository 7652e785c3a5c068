"""One module per agent type, named after the type's stable id.

Each module exposes ``AGENT_TYPE``, an :class:`~loom.agents.types.base.AgentType` holding
everything about that type: its graph, how its state is shown, the config fields it reads.
Adding an agent type is one new module here and one line in
:func:`loom.agents.registry.default_agent_types`.
"""
