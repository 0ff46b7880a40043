"""ownCloud 10's own API acceptance features (Gherkin) run against our servers: the legacy
server, the new stack and the routing proxy (docs/acceptance.md)."""
