"""``revisor.web``: the web UI — server-rendered pages for registry administrators and editors.

It is a thin entry point like the CLI and the HTTP API: each page parses its request, calls the
same services the API calls (``Source.view``, ``Candidates``, ``Workspace``, ``AuthService``, the
audit log, the job runs) and renders a Jinja2 template. ``revisor.web.app.mount`` attaches it to
the application built by ``revisor.api.app.create_app``.
"""
