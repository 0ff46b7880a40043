"""WebDAV as ownCloud 10 serves it: request parsing and multistatus writing (xml), property
values (props), error bodies (errors) and the methods over a FilesBackend (methods)."""
