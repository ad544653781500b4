"""Us -> Klaviyo: the outbox, its migrations, group commit, the sender and its pacing."""
