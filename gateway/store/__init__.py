"""State that changes while serving, behind one async contract (``base.Store``): memory, sqlite, redis,
postgres; ``factory.open_stores`` builds what the ``storage`` config section names."""
