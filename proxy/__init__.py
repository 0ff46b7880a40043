"""Per-user routing reverse proxy in front of ownCloud 10 and the new stack."""
