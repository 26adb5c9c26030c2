"""Push-back: member-card updates and outbound messages queued with the change that caused them,
drained with retries (:mod:`.drain`)."""
