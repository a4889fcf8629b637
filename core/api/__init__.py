"""Agira's JSON API (django-ninja), mounted at /api/: see docs/api.md."""
