"""Sharing: oc_share semantics, recipients' mounts, public and private links."""
