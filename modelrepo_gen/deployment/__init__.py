"""Deploy on the target: an archive's repository written out, with its packed Python
environment and, for TensorRT, engines made and checked on this machine.

deployed_files.py picks and writes the files, python_env.py packs the python backend's
environment, engines.py builds and checks the TensorRT engines.
"""
