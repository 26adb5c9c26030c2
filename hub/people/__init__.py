"""People: phone numbers (:mod:`.phones`), identity stitching (:mod:`.identity`), members with
their audited merges and splits (:mod:`.members`), and reading fans and members (:mod:`.queries`)."""
