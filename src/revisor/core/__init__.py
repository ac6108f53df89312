"""``revisor.core``: snapshots and transactions — the domain objects every use case is made of."""
