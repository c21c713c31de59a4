"""The api area of the web app."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this area's routes."""
