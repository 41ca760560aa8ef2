"""The store: the async API, its local snapshot, the fallback chain and the sync facade."""
