"""Syncing: one run (:mod:`.run`, the entry point of ``siyu sync`` and ``siyu demo``), the page loop
(:mod:`.engine`), the store and its one door for a page's write (:mod:`.store`, planning in
:mod:`.plans`, rows of each record kind in :mod:`.kinds`), the interpreter tuned for a sync
(:mod:`.tuning`), and applying what arrived (:mod:`.apply`: stitching, tiers, points)."""
