"""ownCloud 10's small formatting rules: hashes, ids, etags, permissions, checksums, quotas, names.

Pure functions: the fixture builder writes with them, the new stack answers clients with them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import re
import threading
import zlib
from collections.abc import Buffer
from decimal import Decimal
from email.utils import formatdate
from typing import Final

PERM_READ: Final = 1
PERM_UPDATE: Final = 2
PERM_CREATE: Final = 4
PERM_DELETE: Final = 8
PERM_SHARE: Final = 16
PERM_ALL: Final = 31

# Cache\Storage::adjustStorageId: oc_storages.id is a VARCHAR(64).
_MAX_STORAGE_ID_BYTES: Final = 64


def path_hash(path: str) -> str:
    """oc_filecache.path_hash: md5 hex of the exact UTF-8 path (no normalisation here)."""
    return hashlib.md5(path.encode("utf-8")).hexdigest()


def uniqid(t: float) -> str:
    """PHP uniqid() at unix time `t`: 8 hex digits of seconds + 5 of microseconds."""
    micros = round(t * 1_000_000)
    seconds, usec = divmod(micros, 1_000_000)
    return f"{seconds:08x}{usec:05x}"


def file_etag(mtime: int, inode: int, device: int, size: int) -> str:
    """Local::getETag for a file: md5 of the four decimal numbers run together."""
    return hashlib.md5(f"{mtime}{inode}{device}{size}".encode("ascii")).hexdigest()


def oc_id(fileid: int, instance_id: str) -> str:
    """WebDAV oc:id and the OC-FileId header: PHP sprintf('%08d') + instanceid."""
    return f"{fileid:08d}{instance_id}"


def dav_permissions(bits: int, *, is_dir: bool, shared: bool = False, mounted: bool = False) -> str:
    """Node::getDavPermissions: the oc:permissions letters for effective permission `bits`."""
    letters = []
    if shared:
        letters.append("S")
    if bits & PERM_SHARE:
        letters.append("R")
    if mounted:
        letters.append("M")
    if bits & PERM_DELETE:
        letters.append("D")
    if bits & PERM_UPDATE:
        letters.append("NV")
    if is_dir:
        if bits & PERM_CREATE:
            letters.append("CK")
    elif bits & PERM_UPDATE:
        letters.append("W")
    return "".join(letters)


# --- checksums -------------------------------------------------------------------------------

_CHECKSUM_ALGOS: Final = ("SHA1", "MD5", "ADLER32")


def format_checksums(sha1: str, md5: str, adler32: str) -> str:
    """oc_filecache.checksum as the Checksum storage wrapper writes it."""
    return f"SHA1:{sha1} MD5:{md5} ADLER32:{adler32}"


def parse_checksums(s: str | None) -> dict[str, str]:
    """Split a stored checksum string into {'SHA1': .., 'MD5': .., 'ADLER32': ..}.

    Missing algorithms are simply absent; '' and None give {}. Older rows hold a single
    `SHA1:..` written from a client header, and hand-made ones may use commas (the WebDAV list
    separator), so both separators and any amount of whitespace are accepted.
    """
    result: dict[str, str] = {}
    if not s:
        return result
    for item in re.split(r"[\s,]+", s.strip()):
        algo, sep, value = item.partition(":")
        algo = algo.upper()
        # first one wins, as File::getChecksum returns the first matching entry
        if sep and value and algo in _CHECKSUM_ALGOS and algo not in result:
            result[algo] = value
    return result


#: chunks at least this big are hashed on two helper threads (hashlib releases the GIL):
#: SHA1 and MD5 of a large upload then run side by side instead of one after the other
PARALLEL_HASH_MIN: Final = 256 * 1024
_HASHERS: concurrent.futures.ThreadPoolExecutor | None = None
_HASHERS_LOCK = threading.Lock()


def _hashers() -> concurrent.futures.ThreadPoolExecutor:
    global _HASHERS
    with _HASHERS_LOCK:
        if _HASHERS is None:
            _HASHERS = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="ocbridge-hash")
        return _HASHERS


class ChecksumAccumulator:
    """SHA1, MD5 and ADLER32 of a byte stream, fed in chunks of any size.

    Large chunks are hashed in parallel (SHA1 and MD5 on helper threads, ADLER32 in the
    caller's); each digest still sees the chunks in order. Not for use from several threads."""

    def __init__(self) -> None:
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._adler = zlib.adler32(b"")
        self._pending: list[concurrent.futures.Future[None]] = []
        self.size = 0

    def update(self, data: Buffer) -> None:
        view = memoryview(data)
        self.size += view.nbytes
        self._wait()
        if view.nbytes >= PARALLEL_HASH_MIN:
            if not isinstance(data, bytes):  # a reusable buffer could change under the hashers
                view = memoryview(bytes(view))
            pool = _hashers()
            self._pending = [pool.submit(self._sha1.update, view),
                             pool.submit(self._md5.update, view)]
        else:
            self._sha1.update(view)
            self._md5.update(view)
        self._adler = zlib.adler32(view, self._adler)

    def _wait(self) -> None:
        for future in self._pending:
            future.result()
        self._pending = []

    def hexdigests(self) -> tuple[str, str, str]:
        """(sha1, md5, adler32) of everything fed so far."""
        self._wait()
        return self._sha1.hexdigest(), self._md5.hexdigest(), f"{self._adler:08x}"

    def result(self) -> str:
        """The oc_filecache.checksum string for everything fed so far (may be called repeatedly)."""
        return format_checksums(*self.hexdigests())


# --- PHP number formatting and rounding ----------------------------------------------------------


def php_float_str(value: float, precision: int = 14) -> str:
    """A PHP 7.4 float as text: precision 14 is `(string)$f`; -1 is var_export's shortest form.

    Both go through php_gcvt: exponent form when the decimal point would sit more than
    `precision` (17 for -1) digits right or more than 3 zeros left, e.g. `1.0E+25`, `1.0E-5`.
    """
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    negative = math.copysign(1.0, value) < 0
    if value == 0.0:
        digits, decpt = "0", 1
    elif precision < 0:
        tup = Decimal(repr(abs(value))).normalize().as_tuple()
        digits = "".join(map(str, tup.digits))
        decpt = len(digits) + int(tup.exponent)
    else:
        mantissa, _, exp = f"{abs(value):.{precision - 1}e}".partition("e")
        digits = mantissa.replace(".", "").rstrip("0") or "0"
        decpt = int(exp) + 1
    ndigit = 17 if precision < 0 else precision
    sign = "-" if negative else ""
    if decpt < -3 or decpt > ndigit:
        exp10 = decpt - 1
        return f"{sign}{digits[0]}.{digits[1:] or '0'}E{'-' if exp10 < 0 else '+'}{abs(exp10)}"
    if decpt <= 0:
        return f"{sign}0.{'0' * -decpt}{digits}"
    whole = digits[:decpt].ljust(decpt, "0")
    frac = digits[decpt:]
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0.0 else math.ceil(x - 0.5)


def _php_round(value: float, places: int = 0) -> float:
    """PHP 7.4 round(): pre-round to 15 significant digits, then half away from zero.

    The pre-rounding is why PHP gives round(1.955, 2) == 1.96 where a plain binary rounding
    would not; oC10 quota strings depend on it.
    """
    if not math.isfinite(value) or value == 0.0:
        return value
    precision_places = 14 - math.floor(math.log10(abs(value)))
    f1 = 10.0 ** abs(places)
    if places < precision_places < places + 15:
        shift = 10.0 ** abs(precision_places)
        tmp = value * shift if precision_places >= 0 else value / shift
        tmp = _round_half_away(tmp) / 10.0 ** abs(places - precision_places)
    else:
        tmp = value * f1 if places >= 0 else value / f1
        if abs(tmp) >= 1e15:
            return value
    tmp = _round_half_away(tmp)
    return tmp / f1 if places > 0 else tmp * f1


# --- quotas (OC_Helper::humanFileSize / computerFileSize, OC_Util::getUserQuota) -----------------

_SIZE_UNITS: Final = {
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "p": 1024**5,
    "pb": 1024**5,
}
_WS: Final = " \t\n\r\v\f"
# PHP 7.4 is_numeric(): leading (never trailing) whitespace, sign, decimal or exponent notation
_NUMBER: Final = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_IS_NUMERIC = re.compile(rf"[ \t\n\r\v\f]*{_NUMBER}\Z")
# PHP floatval(): the longest numeric prefix, 0 if there is none
_FLOAT_PREFIX = re.compile(rf"[ \t\n\r\v\f]*({_NUMBER})")
_UNIT_SUFFIX = re.compile(r"([kmgtp]?b?)$")
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def human_file_size(n: int) -> str:
    """OC_Helper::humanFileSize: `512 B`, `10 KB`, `1.5 MB` (base 1024; KB whole, then .1)."""
    if n < 0:
        return "?"
    if n < 1024:
        return f"{n} B"
    # each step rounds the already rounded value, exactly as the PHP cascade does
    size = _php_round(float(n) / 1024, 0)
    if size < 1024:
        return f"{php_float_str(size)} KB"
    for unit in ("MB", "GB", "TB"):
        size = _php_round(size / 1024, 1)
        if size < 1024:
            return f"{php_float_str(size)} {unit}"
    size = _php_round(size / 1024, 1)
    return f"{php_float_str(size)} PB"


def _computer_file_size(s: str) -> float | None:
    text = s.translate(_ASCII_LOWER)
    if _IS_NUMERIC.match(text):
        return float(text.strip(_WS))
    prefix = _FLOAT_PREFIX.match(text)
    number = float(prefix.group(1)) if prefix else 0.0
    unit = _UNIT_SUFFIX.search(text)
    factor = _SIZE_UNITS.get(unit.group(1)) if unit else None
    if factor is None:
        return None
    return _php_round(number * factor, 0)


def computer_file_size(s: str) -> int | None:
    """OC_Helper::computerFileSize: `10 GB`, `1.5m`, `512` → bytes; None where PHP returns false.

    PHP returns a float; a bare fractional number ("1.5") is floored here, and a value too large
    for any integer (e.g. "1e999") is None.
    """
    value = _computer_file_size(s)
    if value is None or not math.isfinite(value):
        return None
    return math.floor(value)


def parse_quota(value: str | None, default_quota: str | None) -> int | None:
    """The effective quota in bytes of a user whose oc_accounts.quota is `value`; None = unlimited.

    `default_quota` is appconfig files/default_quota (absent = 'none'). Like OC_Util::getUserQuota
    only the exact strings 'default' and 'none' are special. A negative size behaves as
    unlimited. An unparseable string makes oC10 compute `false - used`, i.e. no free space at
    all, so it yields 0 rather than None.
    """
    if value is None or value == "default":
        value = "none" if default_quota is None else default_quota
    if value == "none":
        return None
    size = _computer_file_size(value)
    if size is None:
        return 0
    if size < 0 or math.isinf(size):
        return None
    return math.floor(size)


# --- WebDAV ---------------------------------------------------------------------------------------

_DAV_SAFE: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~()/:@"
)


def dav_encode_path(path: str) -> str:
    """Sabre\\HTTP\\encodePath: %-encode each UTF-8 byte outside the safe set, lowercase hex."""
    return "".join(
        chr(b) if b in _DAV_SAFE else f"%{b:02x}" for b in path.encode("utf-8", "surrogateescape")
    )


def rfc1123(ts: int) -> str:
    """d:getlastmodified / Last-Modified: `Tue, 05 Mar 2024 10:15:30 GMT` (English, locale-free)."""
    return formatdate(ts, usegmt=True)


# --- trash bin and versions -------------------------------------------------------------------


def trash_name(name: str, ts: int) -> str:
    """Name of an item in files_trashbin/files: `<name>.d<deletion time>`."""
    return f"{name}.d{ts}"


def version_name(name: str, mtime: int) -> str:
    """Name of an old version in files_versions: `<name>.v<mtime of that content>`."""
    return f"{name}.v{mtime}"


def _split_suffix(s: str, marker: str) -> tuple[str, int] | None:
    # oC10 splits at the last marker (strrpos); the rest must be a plain decimal timestamp
    pos = s.rfind(marker)
    if pos <= 0:
        return None
    digits = s[pos + len(marker) :]
    if not digits or not all("0" <= c <= "9" for c in digits):
        return None
    return s[:pos], int(digits)


def parse_trash_name(s: str) -> tuple[str, int] | None:
    """`a.txt.d1700000000` → ('a.txt', 1700000000); None if `s` is not a trash name."""
    return _split_suffix(s, ".d")


def parse_version_name(s: str) -> tuple[str, int] | None:
    """`a.txt.v1700000000` → ('a.txt', 1700000000); None if `s` is not a version name."""
    return _split_suffix(s, ".v")


# --- avatars and storage ids ------------------------------------------------------------------


def avatar_path(uid: str) -> str:
    """Folder of a user's avatar on the root storage: `avatars/ab/cd/<28 hex>` from md5(uid)."""
    digest = hashlib.md5(uid.encode("utf-8")).hexdigest()
    return f"avatars/{digest[:2]}/{digest[2:4]}/{digest[4:]}"


def _adjust_storage_id(storage_id: str) -> str:
    raw = storage_id.encode("utf-8")
    if len(raw) > _MAX_STORAGE_ID_BYTES:
        return hashlib.md5(raw).hexdigest()
    return storage_id


def home_storage_id(uid: str) -> str:
    """oc_storages.id of a user's home: `home::<uid>`, or its md5 when over 64 bytes."""
    return _adjust_storage_id(f"home::{uid}")


def local_storage_id(path: str) -> str:
    """oc_storages.id of a Local storage: `local::<path>/` (slash added); md5 when over 64 bytes."""
    if not path.endswith("/"):
        path += "/"
    return _adjust_storage_id(f"local::{path}")
