"""Supermasks in Superposition: masked layers over fixed random weights, models, data, training, inference."""
__all__: list[str] = []
