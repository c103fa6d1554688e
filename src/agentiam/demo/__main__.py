"""Run the support-desk demo: ``python -m agentiam.demo``."""

from __future__ import annotations

import sys

from agentiam.demo.pipeline import main

sys.exit(main())
