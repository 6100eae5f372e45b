"""Pipeline archives: one file holding a built repository, to deploy on another machine.

container.py writes and checks the file (a canonical tar.gz), encryption.py seals it with a key,
keys.py reads the key material, write.py and read.py are what the build and deploy call,
renderings.py picks the repository rendered for a target, kubernetes.py renders manifests.
"""
