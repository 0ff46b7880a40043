"""bridge/oc10/formats.py against values computed outside Python (md5sum, sha1sum, perl, date)."""

from __future__ import annotations

import pytest

from bridge.oc10.formats import (
    PERM_ALL,
    PERM_CREATE,
    PERM_DELETE,
    PERM_READ,
    PERM_SHARE,
    PERM_UPDATE,
    ChecksumAccumulator,
    avatar_path,
    computer_file_size,
    dav_encode_path,
    dav_permissions,
    file_etag,
    format_checksums,
    home_storage_id,
    human_file_size,
    local_storage_id,
    oc_id,
    parse_checksums,
    parse_quota,
    parse_trash_name,
    parse_version_name,
    path_hash,
    php_float_str,
    rfc1123,
    trash_name,
    uniqid,
    version_name,
)

FOX = b"The quick brown fox jumps over the lazy dog"
FOX_SHA1 = "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
FOX_MD5 = "9e107d9d372bb6826bd81d3542a419d6"
FOX_ADLER32 = "5bdc0fda"  # perl Compress::Zlib::adler32


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("files", "45b963397aa40d4a0063e0d85e4fe7a1"),
        ("files/welcome.txt", "c49a144e772727f51b75705170e88a43"),
        ("Ä-ä", "7fde8b8d0b36a5a3924e4ac340de8127"),
    ],
)
def test_path_hash(path: str, expected: str) -> None:
    assert path_hash(path) == expected


def test_uniqid_is_hex_seconds_and_microseconds() -> None:
    # printf '%08x%05x' 1700000000 500000
    assert uniqid(1700000000.5) == "6553f1007a120"
    assert uniqid(1700000000.0) == "6553f10000000"


def test_uniqid_carries_rounded_microseconds_into_the_seconds() -> None:
    value = uniqid(1700000000.9999999)
    assert value == "6553f10100000"
    assert len(value) == 13


def test_file_etag_is_md5_of_decimal_concatenation() -> None:
    # printf '170963373012345678912345163' | md5sum
    assert file_etag(1709633730, 123456789, 12345, 163) == "74ae80e0244d77264d448f033e9efb28"


def test_oc_id_pads_to_eight_digits_and_never_truncates() -> None:
    assert oc_id(42, "oc1a2b3c4d5e") == "00000042oc1a2b3c4d5e"
    assert oc_id(68, "ocjvdifsmy63") == "00000068ocjvdifsmy63"
    assert oc_id(2147500913, "ocx") == "2147500913ocx"


def test_permission_constants() -> None:
    assert (PERM_READ, PERM_UPDATE, PERM_CREATE, PERM_DELETE, PERM_SHARE) == (1, 2, 4, 8, 16)
    assert PERM_ALL == PERM_READ | PERM_UPDATE | PERM_CREATE | PERM_DELETE | PERM_SHARE == 31


@pytest.mark.parametrize(
    ("bits", "is_dir", "shared", "mounted", "expected"),
    [
        (31, True, False, False, "RDNVCK"),  # own folder / files root
        (27, False, False, False, "RDNVW"),  # own file
        (31, True, False, True, "RMDNVCK"),  # object store home
        (27, False, False, True, "RMDNVW"),
        (1, True, True, False, "S"),  # inside a read-only share
        (17, True, True, False, "SR"),
        (31, True, True, False, "SRDNVCK"),
        (31, False, True, False, "SRDNVW"),
        (9, True, True, False, "SD"),  # share root at Depth 0, share perms 1
        (11, True, True, False, "SDNV"),  # same root in the parent's listing
        (11, False, True, False, "SDNVW"),
        (17, True, False, False, "R"),  # read-only mount
        (4, False, False, False, ""),  # CREATE means nothing on a file
        (0, True, False, False, ""),
    ],
)
def test_dav_permissions(
    bits: int, is_dir: bool, shared: bool, mounted: bool, expected: str
) -> None:
    assert dav_permissions(bits, is_dir=is_dir, shared=shared, mounted=mounted) == expected


def test_format_checksums() -> None:
    assert format_checksums("a" * 40, "b" * 32, "0000abcd") == (
        f"SHA1:{'a' * 40} MD5:{'b' * 32} ADLER32:0000abcd"
    )


def test_checksum_accumulator_matches_known_digests_in_any_chunking() -> None:
    expected = f"SHA1:{FOX_SHA1} MD5:{FOX_MD5} ADLER32:{FOX_ADLER32}"
    whole = ChecksumAccumulator()
    whole.update(FOX)
    assert whole.result() == expected
    pieces = ChecksumAccumulator()
    view = memoryview(FOX)
    for i in range(0, len(FOX), 7):
        pieces.update(view[i : i + 7])
    assert pieces.result() == expected
    assert pieces.result() == expected  # result() does not consume the state


def test_checksum_accumulator_empty_and_zero_padded_adler() -> None:
    empty = ChecksumAccumulator()
    assert empty.result() == (
        "SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709 "
        "MD5:d41d8cd98f00b204e9800998ecf8427e ADLER32:00000001"
    )
    one = ChecksumAccumulator()
    one.update(b"a")
    assert one.result().endswith(" ADLER32:00620062")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, {}),
        ("", {}),
        ("   ", {}),
        (
            f"SHA1:{FOX_SHA1} MD5:{FOX_MD5} ADLER32:{FOX_ADLER32}",
            {"SHA1": FOX_SHA1, "MD5": FOX_MD5, "ADLER32": FOX_ADLER32},
        ),
        (f"  SHA1:{FOX_SHA1}   MD5:{FOX_MD5}  ", {"SHA1": FOX_SHA1, "MD5": FOX_MD5}),
        (f"SHA1:{FOX_SHA1}", {"SHA1": FOX_SHA1}),
        (f"sha1:{FOX_SHA1},md5:{FOX_MD5}", {"SHA1": FOX_SHA1, "MD5": FOX_MD5}),
        (f"SHA256:abc SHA1: junk MD5:{FOX_MD5}", {"MD5": FOX_MD5}),
        ("SHA1:first SHA1:second", {"SHA1": "first"}),
    ],
)
def test_parse_checksums(stored: str | None, expected: dict[str, str]) -> None:
    assert parse_checksums(stored) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # §4.4 examples
        (0, "0 B"),
        (512, "512 B"),
        (10 * 1024, "10 KB"),
        (1572864, "1.5 MB"),
        (10 * 1024**3, "10 GB"),
        (1024**4, "1 TB"),
        # tests/lib/LegacyHelperTest.php humanFileSizeProvider
        (1024, "1 KB"),
        (10000000, "9.5 MB"),
        (1395864371, "1.3 GB"),
        (500000000000, "465.7 GB"),
        (500000000000000, "454.7 TB"),
        (500000000000000000, "444.1 PB"),
        # 1.25 MB rounds half away from zero in PHP (Python's round() would say 1.2)
        (1280 * 1024, "1.3 MB"),
        # 1023.59 KB rounds to 1024 KB, which is no longer < 1024 → next unit
        (1023 * 1024 + 600, "1 MB"),
        (1023, "1023 B"),
        (-1, "?"),
    ],
)
def test_human_file_size(size: int, expected: str) -> None:
    assert human_file_size(size) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # tests/lib/LegacyHelperTest.php providesComputerFileSize
        ("0 B", 0),
        ("1 KB", 1024),
        ("1.3 GB", 1395864371),
        ("9.5 MB", 9961472),
        ("465.7 GB", 500041567437),
        ("12 GB etfrhzui", None),
        # suffixes, case, spacing
        ("2k", 2048),
        ("1.5 MB", 1572864),
        ("10gb", 10 * 1024**3),
        ("1 Tb", 1024**4),
        ("1p", 1024**5),
        ("512", 512),
        ("1e3kb", 1024000),
        ("5 GB\n", 5 * 1024**3),  # PCRE '$' also matches before a final newline
        # PHP quirks kept on purpose
        ("10 xb", 10),  # the regex only sees the trailing 'b'
        ("kb", 0),  # floatval('kb') is 0
        (" 10", 10),  # is_numeric allows leading whitespace …
        ("10 ", None),  # … but not trailing whitespace on PHP 7.4
        ("1.5", 1),  # bare numbers are not rounded by PHP; floored here
        ("none", None),
        ("", None),
        ("1e999", None),
    ],
)
def test_computer_file_size(text: str, expected: int | None) -> None:
    assert computer_file_size(text) == expected


@pytest.mark.parametrize("text", ["10 GB", "1.5 MB", "512 B", "10 KB", "1 TB", "465.7 GB"])
def test_quota_normalisation_is_stable(text: str) -> None:
    # User::setQuota stores humanFileSize(computerFileSize(x)); doing it twice changes nothing
    size = computer_file_size(text)
    assert size is not None
    assert human_file_size(size) == text


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        ("none", None, None),
        (None, None, None),
        ("default", None, None),
        ("default", "none", None),
        ("default", "5 GB", 5 * 1024**3),
        (None, "1 GB", 1024**3),
        ("10 GB", "none", 10 * 1024**3),
        ("0 B", None, 0),
        ("-1", None, None),  # a negative quota lets the storage's own free space through
        ("garbage", None, 0),  # computerFileSize() false → oC10 reports no free space
        ("None", None, 0),  # only the exact lowercase 'none' means unlimited
        ("default", "", 0),
    ],
)
def test_parse_quota(value: str | None, default: str | None, expected: int | None) -> None:
    assert parse_quota(value, default) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/remote.php/webdav/a b+c&ä/(x)~:@!", "/remote.php/webdav/a%20b%2bc%26%c3%a4/(x)~:@%21"),
        ("100%#?.txt", "100%25%23%3f.txt"),
        ("Az09_-.~", "Az09_-.~"),
    ],
)
def test_dav_encode_path(path: str, expected: str) -> None:
    assert dav_encode_path(path) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1709633730, "Tue, 05 Mar 2024 10:15:30 GMT"),
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (1700000000, "Tue, 14 Nov 2023 22:13:20 GMT"),
    ],
)
def test_rfc1123(ts: int, expected: str) -> None:
    assert rfc1123(ts) == expected


def test_trash_and_version_names_round_trip() -> None:
    assert trash_name("report.txt", 1700000000) == "report.txt.d1700000000"
    assert version_name("report.txt", 1690000000) == "report.txt.v1690000000"
    assert parse_trash_name("report.txt.d1700000000") == ("report.txt", 1700000000)
    assert parse_version_name("report.txt.v1690000000") == ("report.txt", 1690000000)
    # a trashed version carries both suffixes
    assert parse_trash_name("a.txt.v5.d7") == ("a.txt.v5", 7)
    assert parse_version_name("a.txt.v5") == ("a.txt", 5)
    # the last marker wins, like strrpos
    assert parse_trash_name("x.d1.d2") == ("x.d1", 2)


@pytest.mark.parametrize(
    "name", ["a.txt", "a.d", "a.dx1", ".d123", "a.d12x", "a.d١٢", "", "a.v12"]
)
def test_parse_trash_name_rejects(name: str) -> None:
    assert parse_trash_name(name) is None


@pytest.mark.parametrize("name", ["a.txt", "a.v", ".v5", "a.v5x", "a.d5"])
def test_parse_version_name_rejects(name: str) -> None:
    assert parse_version_name(name) is None


def test_avatar_path_splits_md5_two_two_rest() -> None:
    # printf alice | md5sum → 6384e2b2184bcbf58eccf10ca7a6563c
    assert avatar_path("alice") == "avatars/63/84/e2b2184bcbf58eccf10ca7a6563c"


def test_home_storage_id_hashes_only_above_64_bytes() -> None:
    assert home_storage_id("alice") == "home::alice"
    assert home_storage_id("u" * 58) == "home::" + "u" * 58  # exactly 64
    assert home_storage_id("u" * 59) == "c695fbf38988256dc765105300c1941a"
    # bytes count, not characters: 30 × 'ä' is 60 bytes
    assert home_storage_id("ä" * 30) == "0956e31105f3a4f5f9534f965bbeca33"


def test_local_storage_id_adds_trailing_slash_and_hashes_long_ids() -> None:
    assert local_storage_id("/var/www/owncloud/data") == "local::/var/www/owncloud/data/"
    assert local_storage_id("/var/www/owncloud/data/") == "local::/var/www/owncloud/data/"
    long_dir = "/srv/very/long/path/that/goes/on/and/on/for/quite/a/while/data"
    assert local_storage_id(long_dir) == "b53cfea514e31758e32b0cb09c0e47ce"


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        (1.5, 14, "1.5"),
        (10.0, 14, "10"),
        (1 / 3, 14, "0.33333333333333"),
        (1e25, 14, "1.0E+25"),
        (1e-5, 14, "1.0E-5"),
        (0.0001, 14, "0.0001"),
        (-2.5, 14, "-2.5"),
        (1 / 3, -1, "0.3333333333333333"),
        (0.1, -1, "0.1"),
        (1e16, -1, "10000000000000000"),
        (1e17, -1, "1.0E+17"),
        (float("inf"), -1, "INF"),
        (float("nan"), 14, "NAN"),
    ],
)
def test_php_float_str(value: float, precision: int, expected: str) -> None:
    assert php_float_str(value, precision) == expected
