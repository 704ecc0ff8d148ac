"""The storage tests again, on a real PostgreSQL (the durable store of a multi-node deployment)."""
