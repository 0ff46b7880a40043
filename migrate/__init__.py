"""Per-user migration jobs from ownCloud 10 to the new stack."""
