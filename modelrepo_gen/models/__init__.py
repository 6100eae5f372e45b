"""PyTorch modules the network components build (see modelrepo_gen/components/)."""
