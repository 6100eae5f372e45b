"""The bottom layer: what every stage may import, importing nothing else of the project.

The build plan's data types (tensor specs, signatures, model units, the ensemble), the
registry, errors, value checks and where the project's own files are. No torch at import time.
"""
