"""Control plane and shared vocabulary: config, ownCloud 10 knowledge, state, the CLI."""
