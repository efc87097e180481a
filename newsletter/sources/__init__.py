"""Where articles come from: the readers of each format, ingest, polling the project's sources."""
