"""The built-in platform plugins, one sub-package each."""
