"""The web console's static files (issue 15), shipped as package data in ``static/``.

Plain HTML, CSS and ES modules with no build step: ``dfs.api.routes_console`` serves them at
``/ui/``. The page holds no data of its own; every action is an API call of the same origin
with the bearer token the user signed in with (kept in ``sessionStorage``, never in a URL).
docs/CONSOLE.md says what it does and does not do yet.
"""
