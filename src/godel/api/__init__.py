"""The HTTP API (FastAPI): events, agents, admin, health, metrics and the dashboard."""

from godel.api.app import create_app

__all__ = ["create_app"]
