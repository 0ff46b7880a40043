"""ownCloud 10 knowledge in one place: schema, config.php, hashes, tokens and formats."""
