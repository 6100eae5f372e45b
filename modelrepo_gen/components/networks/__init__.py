"""PyTorch modules the network components build, with the checks of their settings."""
