"""Grants, consent receipts, the token endpoint, token exchange, introspection and
revocation."""
