"""Callbacks: the ASGI receiver (:mod:`.receiver`) and the callbacks it stores (:mod:`.stored`)."""
