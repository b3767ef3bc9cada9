"""The desk's use-cases. Each one is a single transaction: state change + audit + outbox together."""
