"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""
from fittribe import create_app

app = create_app()
