"""Upload staging for chunked uploads: the contract (`base`), the native backend's (`metadata`)
and the ownCloud 10 data directory's (`directory`). newstack/dav/chunking.py uses them."""
