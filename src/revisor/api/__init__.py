"""The HTTP API v1 (``revisor serve``): FastAPI routes over the same services the CLI uses.

``create_app`` builds the application; routes live in ``api.routes`` (one module per area), errors
become RFC 9457 problem documents in ``api.problems``, and who may do what is decided by
``services.auth`` through the dependencies in ``api.deps``.
"""
