"""The new stack: WebDAV and ownCloud 10 API over a metadata service and storage drivers."""
