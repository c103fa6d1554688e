"""The support-desk demo: a protected API and a scripted multi-agent pipeline."""
