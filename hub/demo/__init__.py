"""The demo of every built-in platform, end to end (``siyu demo``)."""
