"""Plan -> files: export each network, check it against PyTorch, render every config.pbtxt
and the repository README, check the wiring, write the manifest."""
