"""The ocbridge error tree: every error a user can see derives from OcbridgeError.

    OcbridgeError
    ├── ConfigError           the config file or an OCBRIDGE_ variable is wrong (all problems)
    ├── LegacyInstanceError   an ownCloud 10 instance (config.php, database, data dir) is unusable
    └── FixtureError          a fixture instance cannot be built where it was asked for

Foreign exceptions (SQLAlchemy, OS, SDKs) are translated at the boundary that calls them, so
the CLI can print one clear message and exit non-zero without a traceback.
"""

from __future__ import annotations


class OcbridgeError(Exception):
    """Base of all errors meant for a human: the message says what, to what, and what next."""


class ConfigError(OcbridgeError):
    """One or more problems in the settings; all of them are reported at once."""

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class LegacyInstanceError(OcbridgeError):
    """The ownCloud 10 instance (config.php, database or data directory) cannot be used."""


class FixtureError(OcbridgeError):
    """A fixture instance cannot be created as requested."""
