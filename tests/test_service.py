"""The Flask app class: Flask's own, asking once per function whether it is a coroutine."""

from __future__ import annotations

import pytest
from flask import Flask

from widget import KNOWN_FUNCTIONS


def test_a_plain_function_is_run_as_it_is_and_asked_about_once(make_app):
    app = make_app()
    calls = []

    def view():
        calls.append(1)

    assert app.ensure_sync(view) is view and app.ensure_sync(view) is view
    assert app._known[view] is view


def test_a_coroutine_is_treated_as_flask_treats_it(make_app):
    app = make_app()

    async def view():
        return "async"

    try:
        expected = Flask.ensure_sync(app, view)
    except RuntimeError as refusal:  # Flask without its "async" extra refuses it
        with pytest.raises(RuntimeError, match=str(refusal)[:40]):
            app.ensure_sync(view)
    else:
        assert app.ensure_sync(view) is not view and callable(expected)


def test_functions_made_per_call_do_not_grow_what_is_kept(make_app):
    app = make_app()
    for n in range(KNOWN_FUNCTIONS + 50):
        def made(n=n):
            return n
        assert app.ensure_sync(made) is made
    assert len(app._known) == KNOWN_FUNCTIONS
