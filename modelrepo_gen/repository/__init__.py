"""Writing a repository safely: staging folders, ownership checks, the atomic swap into place,
and signals that stop a build without leaving anything behind."""
