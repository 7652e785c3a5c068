"""Agent types, models and the graphs they compile to."""
