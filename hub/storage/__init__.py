"""The database: engines and migrations (:mod:`.database`), every driver-level statement
(:mod:`.bulk`), and clearing stored tokens (:mod:`.tokens`)."""
