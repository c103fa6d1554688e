"""The ``agentiam <noun> <verb>`` command line."""
