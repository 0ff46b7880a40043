"""bridge/oc10/mimetypes.py: the oC10 10.16.4 table and Detection::detectPath's name rules."""

from __future__ import annotations

import pytest

from bridge.oc10.mimetypes import (
    DEFAULT_MIMETYPE,
    DIR_MIMETYPE,
    MIMETYPE_MAPPING,
    mimepart,
    mimetype_for,
)


def test_table_size_and_shape() -> None:
    # REFERENCE.md §2.3: mimetypemapping.dist.json has 195 entries
    assert len(MIMETYPE_MAPPING) == 195
    assert all(key == key.lower() and not key.startswith("_") for key in MIMETYPE_MAPPING)
    assert all("/" in value for value in MIMETYPE_MAPPING.values())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the examples listed in REFERENCE.md §2.3
        ("notes.txt", "text/plain"),
        ("README.md", "text/markdown"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.pdf", "application/pdf"),
        ("a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("a.odt", "application/vnd.oasis.opendocument.text"),
        ("a.zip", "application/zip"),
        ("a.mp3", "audio/mpeg"),
        ("a.mp4", "video/mp4"),
        ("a.csv", "text/csv"),
        ("a.json", "application/json"),
        # entries with a "secure" alternative keep their primary type
        ("index.html", "text/html"),
        ("image.svg", "image/svg+xml"),
        ("a.gz", "application/x-gzip"),
    ],
)
def test_known_extensions(name: str, expected: str) -> None:
    assert mimetype_for(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PHOTO.JPG", "image/jpeg"),  # extension is lowercased
        ("Documents/Sub/report.PDF", "application/pdf"),  # paths: only the basename counts
        ("folder/notes.txt/", "text/plain"),  # PHP basename ignores a trailing slash
        ("backup.tar.gz", "application/x-gzip"),  # last dot only: tar.gz key is unreachable
        ("backup.tar.bz2", "application/x-bzip2"),
        ("libfoo.so", "application/x-sharedlib"),
        ("libfoo.so.1", "application/x-sharedlib"),  # shared-object rule beats the last dot
        ("libfoo.so.1.2", "application/x-sharedlib"),
        ("a.so.txt", "application/x-sharedlib"),
        ("foo.sort.txt", "text/plain"),  # '.so' followed by letters is no shared object
        (".bashrc", DEFAULT_MIMETYPE),  # leading dots are dropped → no extension
        ("..md", DEFAULT_MIMETYPE),
        (".hidden.txt", "text/plain"),
        ("README", DEFAULT_MIMETYPE),
        ("trailing.", DEFAULT_MIMETYPE),
        ("unknown.qqq", DEFAULT_MIMETYPE),
        ("", DEFAULT_MIMETYPE),
        ("photo.jpg.v1508946057", "image/jpeg"),  # a version has its file's type
        ("notes.txt.ocTransferId2057600214.part", "text/plain"),  # so has an upload part
        ("notes.txt.part", "text/plain"),
        ("notes.v12", DEFAULT_MIMETYPE),  # 'notes' has no extension once '.v12' is gone
        ("v12", DEFAULT_MIMETYPE),
    ],
)
def test_detect_path_rules(name: str, expected: str) -> None:
    assert mimetype_for(name) == expected


@pytest.mark.parametrize(
    ("mimetype", "expected"),
    [
        ("image/png", "image"),
        (DIR_MIMETYPE, "httpd"),
        ("application/vnd.oasis.opendocument.text", "application"),
        ("weird", ""),
    ],
)
def test_mimepart(mimetype: str, expected: str) -> None:
    assert mimepart(mimetype) == expected


def test_directory_constants() -> None:
    assert DIR_MIMETYPE == "httpd/unix-directory"
    assert DEFAULT_MIMETYPE == "application/octet-stream"
