"""The webhooks area: GitHub's deliveries in, jobs out; one module per event family."""

from aiohttp import web
from gidgethub.routing import Router

from service.webhooks import handler, installation, push, repository


def setup(app: web.Application) -> None:
    """Register the delivery endpoint, routing events to every event family's handlers."""
    app[handler.ROUTER] = Router(push.router, installation.router, repository.router)
    app.add_routes(handler.routes)
