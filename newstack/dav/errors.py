"""WebDAV error bodies exactly as ownCloud 10 (Sabre 4.7) sends them, and the answer each
backend error gets.

newstack.backend raises the errors mapped in ERRORS; newstack.dav.xml raises BadRequest for
bodies it refuses; error_for() turns either into (HTTP status, body) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge.errors import OcbridgeError
from bridge.oc10 import sabre
from newstack.backend import (
    AlreadyExistsError,
    BackendError,
    ChecksumMismatchError,
    ConflictError,
    ForbiddenError,
    IncompleteBodyError,
    InvalidPathError,
    LockedError,
    NotFoundError,
    PreconditionFailedError,
    QuotaExceededError,
    StorageUnavailableError,
)

CONTENT_TYPE = sabre.CONTENT_TYPE
ErrorChild = sabre.ErrorChild
sabre_error_body = sabre.sabre_error_body


def owncloud_error_body(exception: str, message: str, *, retry: bool = False) -> bytes:
    """The variant of ownCloud's own Forbidden (403) and InvalidPath (400) exceptions: an
    xmlns:o on <d:error>, then <o:retry> and <o:reason>, each redeclaring o as the literal
    URI 'o:' (an ownCloud quirk, kept byte for byte)."""
    text = sabre.message_text(message)
    return (sabre.HEAD + sabre.ERROR_OPEN + sabre.OC_XMLNS + ">\n"
            + sabre.element("s:exception", sabre.dom_text(exception), 1)
            + sabre.element("s:message", text, 1)
            + sabre.element("o:retry", "true" if retry else "false", 1, ' xmlns:o="o:"')
            + sabre.element("o:reason", text, 1, ' xmlns:o="o:"')
            + "</d:error>\n").encode("utf-8")


@dataclass(frozen=True)
class SabreError:
    """One kind of error answer: HTTP status, PHP exception class, default message, extras.

    `owncloud_reason` selects owncloud_error_body (ownCloud's Forbidden / InvalidPath).
    """

    status: int
    exception: str
    message: str = ""
    extra: tuple[ErrorChild, ...] = ()
    owncloud_reason: bool = False

    def body(self, message: str | None = None, *, retry: bool = False) -> bytes:
        text = self.message if message is None else message
        if self.owncloud_reason:
            return owncloud_error_body(self.exception, text, retry=retry)
        return sabre_error_body(self.exception, text, self.extra)


_SABRE: Final = "Sabre\\DAV\\Exception\\"
_OC: Final = "OCA\\DAV\\Connector\\Sabre\\Exception\\"

BAD_REQUEST: Final = SabreError(400, _SABRE + "BadRequest")
NOT_FOUND: Final = SabreError(404, _SABRE + "NotFound")
FORBIDDEN: Final = SabreError(403, _SABRE + "Forbidden")
#: ownCloud's Forbidden (ForbiddenException from a storage or hook, e.g. a firewall rule)
OC_FORBIDDEN: Final = SabreError(403, _OC + "Forbidden", owncloud_reason=True)
INVALID_PATH: Final = SabreError(400, _OC + "InvalidPath", owncloud_reason=True)
FILE_LOCKED: Final = SabreError(423, _OC + "FileLocked")
INSUFFICIENT_STORAGE: Final = SabreError(507, _SABRE + "InsufficientStorage")
SERVICE_UNAVAILABLE: Final = SabreError(503, _SABRE + "ServiceUnavailable",
                                        "Storage is temporarily not available")
MAINTENANCE: Final = SabreError(503, _SABRE + "ServiceUnavailable", "System in maintenance mode.")
METHOD_NOT_ALLOWED: Final = SabreError(405, _SABRE + "MethodNotAllowed")
MKCOL_EXISTS: Final = SabreError(405, _SABRE + "MethodNotAllowed",
                                 "The resource you tried to create already exists")
CONFLICT: Final = SabreError(409, _SABRE + "Conflict")
# Sabre 4.x wording; 10.0.x (Sabre 3.2) said "none of the specified the ETags matched."
IF_MATCH_FAILED: Final = SabreError(
    412, _SABRE + "PreconditionFailed",
    "An If-Match header was specified, but none of the specified ETags matched.",
    (("s:header", "If-Match"),))
IF_MATCH_MISSING: Final = SabreError(
    412, _SABRE + "PreconditionFailed",
    "An If-Match header was specified and the resource did not exist",
    (("s:header", "If-Match"),))
IF_NONE_MATCH_FAILED: Final = SabreError(
    412, _SABRE + "PreconditionFailed",
    "An If-None-Match header was specified, but the ETag matched (or * was specified).",
    (("s:header", "If-None-Match"),))
OVERWRITE_FAILED: Final = SabreError(
    412, _SABRE + "PreconditionFailed",
    "The destination node already exists, and the overwrite header is set to false",
    (("s:header", "Overwrite"),))
DEPTH_INFINITY: Final = SabreError(412, _SABRE + "PreconditionFailed",
                                   "Depth infinity not supported")
CHECKSUM_MISMATCH: Final = SabreError(
    400, _SABRE + "BadRequest",
    "The computed checksum does not match the one received from the client.")
INTERNAL: Final = SabreError(500, "Sabre\\DAV\\Exception")


def not_found_message(name: str) -> str:
    """Directory::getChild's message for a missing child."""
    return f"File with name {name} could not be located"


def locked_message(path: str) -> str:
    """ownCloud's LockedException message (file locking), used with FILE_LOCKED."""
    return f'"{path}" is locked'


def dav_locked(lock_uri: str) -> SabreError:
    """Sabre's Locked (423) for a DAV lock held by someone else: names the lock's root."""
    return SabreError(423, _SABRE + "Locked", "",
                      (("d:lock-token-submitted", (("d:href", lock_uri),)),))


def dav_conflicting_lock(lock_uri: str) -> SabreError:
    """Sabre's ConflictingLock (423) for a LOCK request that collides with an existing lock."""
    return SabreError(423, _SABRE + "ConflictingLock", "",
                      (("d:no-conflicting-lock", (("d:href", lock_uri),)),))


#: what each backend error becomes; the exception's own message wins when it has one, so raise
#: without a message to get ownCloud's exact default text
ERRORS: Final[dict[type[BackendError], SabreError]] = {
    NotFoundError: NOT_FOUND,
    AlreadyExistsError: MKCOL_EXISTS,
    ConflictError: CONFLICT,
    ForbiddenError: FORBIDDEN,
    InvalidPathError: INVALID_PATH,
    PreconditionFailedError: IF_MATCH_FAILED,
    ChecksumMismatchError: CHECKSUM_MISMATCH,
    IncompleteBodyError: BAD_REQUEST,
    QuotaExceededError: INSUFFICIENT_STORAGE,
    LockedError: FILE_LOCKED,
    StorageUnavailableError: SERVICE_UNAVAILABLE,
    BackendError: INTERNAL,
}


class DavError(OcbridgeError):
    """An error the DAV layer answers with a Sabre error body (status and body from `error`)."""

    def __init__(self, error: SabreError, message: str | None = None) -> None:
        self.error = error
        self.message = error.message if message is None else message
        super().__init__(self.message or error.exception)

    @property
    def status(self) -> int:
        return self.error.status

    def body(self) -> bytes:
        return self.error.body(self.message)


class BadRequest(DavError):
    """400 Sabre\\DAV\\Exception\\BadRequest, e.g. a request body that cannot be parsed."""

    def __init__(self, message: str) -> None:
        super().__init__(BAD_REQUEST, message)


def error_for(exc: BaseException) -> tuple[int, bytes]:
    """(HTTP status, body) for a DavError or a backend error; anything else is a bare 500."""
    if isinstance(exc, DavError):
        return exc.status, exc.body()
    for cls in type(exc).__mro__:
        error = ERRORS.get(cls)
        if error is not None:
            return error.status, error.body(str(exc) or None)
    return INTERNAL.status, INTERNAL.body()
