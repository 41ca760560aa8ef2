"""The HTTP and WebSocket server: ``/v1`` JSON routes, the change stream, health, metrics, the dashboard.

Build the application with :func:`create_app` and run it on any ASGI server
(``policystore serve`` uses uvicorn)::

    store = await PolicyStore.open("sqlite:///policy.db")
    app = create_app(store)
"""

from policystore.server.app import create_app
from policystore.server.errors import HTTP_STATUS, AuthenticationError, status_for
from policystore.server.tokens import TokenRecord, TokenStore

__all__ = ["HTTP_STATUS", "AuthenticationError", "TokenRecord", "TokenStore", "create_app", "status_for"]
