"""Syncing: the page loop (:mod:`.engine`), the one door for a page's write (:mod:`.store`), and
applying what arrived (:mod:`.apply`: stitching, tiers, points)."""
