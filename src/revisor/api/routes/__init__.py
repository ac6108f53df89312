"""The API's routes, one module per area, each exposing ``router`` (mounted by ``api.app``)."""
