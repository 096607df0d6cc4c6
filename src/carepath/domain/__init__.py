"""The pure clinical model: commands, events, state, the decider and program definitions.

Nothing here performs I/O, reads the clock or the environment, or imports Temporal,
asyncpg, structlog or FastAPI. Time and ids come in through `DecisionContext`.
"""
