"""What the operator sees: metrics (/metrics), webhooks, JSON logs (docs/operations.md).

Nothing is imported here: gunicorn's master imports this package for its hooks
(widget/ops/gunicorn_hooks.py), and prometheus-client must first be imported by a worker,
once PROMETHEUS_MULTIPROC_DIR is set.
"""
