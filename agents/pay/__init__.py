"""Pay: charges and refunds in an ACID SQL ledger (polyglot persistence), announced through an outbox."""
