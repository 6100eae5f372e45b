"""The config side: the typed schema Hydra composes against, value checks, Hydra's errors as
one line, and multirun sweeps."""
