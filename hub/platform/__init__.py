"""Talking to platforms: the HTTP client an adapter is given, token flows, retries, error mapping,
opening an account and sandboxes.  What plugins need of it is re-exported by :mod:`hub`."""
