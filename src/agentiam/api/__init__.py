"""The HTTP API: the Starlette app, the OAuth endpoints, errors and forms."""
