"""Composed config -> build plan: the pipeline graph read from YAML, checked, and turned into
plain data (model units and the ensemble) before any heavy work."""
