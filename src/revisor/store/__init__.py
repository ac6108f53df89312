"""``revisor.store``: the layer that owns every repository on disk.

Sources by name, one bare mirror per git source laid out by the ``unique`` scheme, fetch with
freshness, push with a lease, recovery and maintenance. Nobody above it runs ``git clone`` or
guesses a path.
"""
