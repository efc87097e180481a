"""Mail on its way: MIME, DKIM, the delivery run, transports, send, bounces."""
