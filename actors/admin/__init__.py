"""Administration: clinic set-up, reports and audit, and the outbox that sends links."""
