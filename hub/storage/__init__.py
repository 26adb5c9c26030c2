"""The database: engines and migrations (:mod:`.database`), set-based driver SQL (:mod:`.bulk`)."""
