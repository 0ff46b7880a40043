"""The `oc10` backend: an ownCloud 10 database and data directory served in place."""
