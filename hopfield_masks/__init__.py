"""Associative memory for binary masks: patterns, Hopfield learning rules, memories, recall, capacity."""
__all__: list[str] = []
