"""The staff web workspace: Starlette pages over the desk's use-cases (create_app in app.py)."""
