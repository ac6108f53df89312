"""``revisor.providers``: proposal providers (builtin, and the external SCMs) behind one interface.

``base`` holds the interface and its value types; ``factory.make_provider`` picks the provider a
source is configured with. This package's ``__init__`` imports nothing, so the database models can
use the value types without an import cycle.
"""
