"""The moderator's pages: Klaviyo's reviews and the local delivery queue, read-only."""
