"""SIEM export of the audit log: OCSF mapping and an HTTP push sink.

``ocsf`` is pure and maps stored events to OCSF objects.  ``sink`` reads committed
events from a stored cursor and posts them to an HTTP endpoint, at least once.
"""
