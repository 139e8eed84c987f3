"""Baselines beside SupSup (parameter superposition, BatchEnsemble, bounds): planned, empty for now."""

__all__ = []
