"""Klaviyo -> us: the mirror of the account's reviews (store, sync) and what reads it."""
