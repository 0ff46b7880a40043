"""The ownCloud 10 OCS API as pure functions: envelope (meta/data, codes, XML/JSON bytes),
status.php, capabilities and the user routes. The HTTP layer calls these; no I/O here."""
