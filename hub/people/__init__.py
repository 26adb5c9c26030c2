"""People: phone numbers (:mod:`.phones`), identity stitching (:mod:`.identity`) and members with
their audited merges and splits (:mod:`.members`)."""
