"""Command modules, one per group; each exposes ``register(app)``."""
