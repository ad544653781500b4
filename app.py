"""What gunicorn and `flask --app app` load."""

from widget import create_app

app = create_app()
