"""Shopper -> us: the API and the form, the one submission pipeline, schemas, photos, defences."""
