"""The two-stack environment with an in-process proxy (tests/proxy/test_forward.py), for every
test module here."""

from tests.proxy.test_forward import env  # noqa: F401  (a fixture, registered by import)
