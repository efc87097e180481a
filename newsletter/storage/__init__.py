"""The database: schema, migrations, the archive store, the ledger, source polls."""
