"""The north-bound HTTP API (FastAPI)."""
