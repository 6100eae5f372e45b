"""Serving a repository on the Triton server bundled in nvidia-pytriton, supervised:
python -m modelrepo_gen.serve REPOSITORY"""
