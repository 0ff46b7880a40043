"""The storage driver tests use the session-wide Ceph RGW of tests/conftest.py."""
