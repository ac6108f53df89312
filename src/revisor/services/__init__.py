"""``revisor.services``: the use cases, one module each, on top of core, store and adapters."""
