"""File-name → mimetype detection as ownCloud 10.16 does it (Files\\Type\\Detection::detectPath).

Table: resources/config/mimetypemapping.dist.json of owncloud/core v10.16.4, primary types only.
"""

from __future__ import annotations

import re
from typing import Final

DIR_MIMETYPE: Final = "httpd/unix-directory"
DEFAULT_MIMETYPE: Final = "application/octet-stream"

# extension (lowercase, without the dot) → mimetype; 195 entries
MIMETYPE_MAPPING: Final[dict[str, str]] = {
    "3gp": "video/3gpp",
    "7z": "application/x-7z-compressed",
    "accdb": "application/msaccess",
    "ai": "application/illustrator",
    "apk": "application/vnd.android.package-archive",
    "arw": "image/x-dcraw",
    "avi": "video/x-msvideo",
    "bash": "text/x-shellscript",
    "blend": "application/x-blender",
    "bin": "application/x-bin",
    "bmp": "image/bmp",
    "bpg": "image/bpg",
    "bw": "image/sgi",
    "bz2": "application/x-bzip2",
    "cb7": "application/x-cbr",
    "cba": "application/x-cbr",
    "cbr": "application/x-cbr",
    "cbt": "application/x-cbr",
    "cbtc": "application/x-cbr",
    "cbz": "application/x-cbr",
    "cc": "text/x-c",
    "cdr": "application/coreldraw",
    "class": "application/java",
    "cnf": "text/plain",
    "conf": "text/plain",
    "cpp": "text/x-c++src",
    "cr2": "image/x-dcraw",
    "css": "text/css",
    "csv": "text/csv",
    "cvbdl": "application/x-cbr",
    "c": "text/x-c",
    "c++": "text/x-c++src",
    "dcr": "image/x-dcraw",
    "deb": "application/x-deb",
    "dng": "image/x-dcraw",
    "doc": "application/msword",
    "docm": "application/vnd.ms-word.document.macroEnabled.12",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "dot": "application/msword",
    "dotx": "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
    "drawio": "application/x-drawio",
    "dv": "video/dv",
    "eml": "message/rfc822",
    "eot": "application/vnd.ms-fontobject",
    "epub": "application/epub+zip",
    "eps": "application/postscript",
    "erf": "image/x-dcraw",
    "exe": "application/x-ms-dos-executable",
    "flac": "audio/flac",
    "flv": "video/x-flv",
    "fodg": "application/vnd.oasis.opendocument.graphics-flat-xml",
    "gif": "image/gif",
    "gz": "application/x-gzip",
    "gzip": "application/x-gzip",
    "h": "text/x-h",
    "heic": "image/heic",
    "heif": "image/heif",
    "hh": "text/x-h",
    "hpp": "text/x-h",
    "html": "text/html",
    "htm": "text/html",
    "ical": "text/calendar",
    "ics": "text/calendar",
    "iiq": "image/x-dcraw",
    "impress": "text/impress",
    "int": "image/sgi",
    "inta": "image/sgi",
    "java": "text/x-java-source",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "jps": "image/jpeg",
    "js": "application/javascript",
    "json": "application/json",
    "k25": "image/x-dcraw",
    "kdc": "image/x-dcraw",
    "key": "application/x-iwork-keynote-sffkey",
    "keynote": "application/x-iwork-keynote-sffkey",
    "kra": "application/x-krita",
    "lwp": "application/vnd.lotus-wordpro",
    "m2t": "video/mp2t",
    "m4a": "audio/mp4",
    "m4b": "audio/m4b",
    "m4v": "video/mp4",
    "markdown": "text/markdown",
    "mdown": "text/markdown",
    "md": "text/markdown",
    "mdb": "application/msaccess",
    "mdwn": "text/markdown",
    "mkd": "text/markdown",
    "mef": "image/x-dcraw",
    "mkv": "video/x-matroska",
    "mobi": "application/x-mobipocket-ebook",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "m3u": "audio/mpegurl",
    "m3u8": "audio/mpegurl",
    "mp4": "video/mp4",
    "mpeg": "video/mpeg",
    "mpg": "video/mpeg",
    "mpo": "image/jpeg",
    "msi": "application/x-msi",
    "mts": "video/MP2T",
    "mt2s": "video/MP2T",
    "nef": "image/x-dcraw",
    "numbers": "application/x-iwork-numbers-sffnumbers",
    "odf": "application/vnd.oasis.opendocument.formula",
    "odg": "application/vnd.oasis.opendocument.graphics",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odt": "application/vnd.oasis.opendocument.text",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "ogv": "video/ogg",
    "one": "application/msonenote",
    "opus": "audio/ogg",
    "orf": "image/x-dcraw",
    "otf": "application/font-sfnt",
    "ovpn": "application/x-openvpn-profile",
    "pages": "application/x-iwork-pages-sffpages",
    "pdf": "application/pdf",
    "pfb": "application/x-font",
    "pef": "image/x-dcraw",
    "php": "application/x-php",
    "pl": "application/x-perl",
    "pls": "audio/x-scpls",
    "png": "image/png",
    "pot": "application/vnd.ms-powerpoint",
    "potm": "application/vnd.ms-powerpoint.template.macroEnabled.12",
    "potx": "application/vnd.openxmlformats-officedocument.presentationml.template",
    "ppa": "application/vnd.ms-powerpoint",
    "ppam": "application/vnd.ms-powerpoint.addin.macroEnabled.12",
    "pps": "application/vnd.ms-powerpoint",
    "ppsm": "application/vnd.ms-powerpoint.slideshow.macroEnabled.12",
    "ppsx": "application/vnd.openxmlformats-officedocument.presentationml.slideshow",
    "ppt": "application/vnd.ms-powerpoint",
    "pptm": "application/vnd.ms-powerpoint.presentation.macroEnabled.12",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "ps": "application/postscript",
    "psd": "application/x-photoshop",
    "py": "text/x-python",
    "raf": "image/x-dcraw",
    "rar": "application/x-rar-compressed",
    "reveal": "text/reveal",
    "rgb": "image/sgi",
    "rgba": "image/sgi",
    "rss": "application/rss+xml",
    "rtf": "text/rtf",
    "rw2": "image/x-dcraw",
    "sgf": "application/sgf",
    "sgi": "image/sgi",
    "sh-lib": "text/x-shellscript",
    "sh": "text/x-shellscript",
    "srf": "image/x-dcraw",
    "sr2": "image/x-dcraw",
    "svg": "image/svg+xml",
    "swf": "application/x-shockwave-flash",
    "tar": "application/x-tar",
    "tar.bz2": "application/x-bzip2",
    "tar.gz": "application/x-compressed",
    "tbz2": "application/x-bzip2",
    "tex": "application/x-tex",
    "tgz": "application/x-compressed",
    "tiff": "image/tiff",
    "tif": "image/tiff",
    "toml": "application/toml",
    "ttf": "application/font-sfnt",
    "txt": "text/plain",
    "vcard": "text/vcard",
    "vcf": "text/vcard",
    "vob": "video/dvd",
    "vsd": "application/vnd.visio",
    "wav": "audio/wav",
    "webm": "video/webm",
    "webp": "image/webp",
    "woff": "application/font-woff",
    "wpd": "application/vnd.wordperfect",
    "wmv": "video/x-ms-wmv",
    "xcf": "application/x-gimp",
    "xla": "application/vnd.ms-excel",
    "xlam": "application/vnd.ms-excel.addin.macroEnabled.12",
    "xls": "application/vnd.ms-excel",
    "xlsb": "application/vnd.ms-excel.sheet.binary.macroEnabled.12",
    "xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xlt": "application/vnd.ms-excel",
    "xltm": "application/vnd.ms-excel.template.macroEnabled.12",
    "xltx": "application/vnd.openxmlformats-officedocument.spreadsheetml.template",
    "xml": "application/xml",
    "xrf": "image/x-dcraw",
    "yaml": "application/yaml",
    "yml": "application/yaml",
    "zip": "application/zip",
    "so": "application/x-sharedlib",
    "dll": "application/x-msdos-program",
    "dylib": "application/x-sharedlib",
}

# Detection::detectSharedObjFileName: `libfoo.so`, `libfoo.so.1` count as shared objects
_SHARED_OBJECT = re.compile(r"(.*?)(\.so)([.]*?.*)", re.IGNORECASE)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _is_shared_object(file_name: str) -> bool:
    match = _SHARED_OBJECT.search(file_name)
    if match is None or match.group(2) != ".so":
        return False
    rest = match.group(3)
    return rest == "" or rest.startswith(".")


_VERSION_OR_PART: Final = re.compile(r"((\.v\d+)|((\.ocTransferId\d+)?\.part))$")


def mimetype_for(name: str) -> str:
    """The mimetype oC10 stores for a file called `name` (a bare name or a path).

    Detection::detectPath: a version's `.v<digits>` and a part file's `.ocTransferId<n>.part`
    suffix are dropped, then only the text after the last dot counts, so `x.tar.gz` is
    `application/x-gzip`: the table's `tar.gz`/`tar.bz2` keys are never reached by detectPath.
    Leading dots are dropped first, so `.bashrc` has no extension.
    """
    file_name = name.rstrip("/").rpartition("/")[2].lstrip(".")
    if "." in file_name:
        # a version (`a.jpg.v1508946057`) or an upload part (`a.jpg.ocTransferId42.part`) has
        # the type of the file it stands for
        file_name = _VERSION_OR_PART.sub("", file_name)
    if _is_shared_object(file_name):
        extension = "so"
    else:
        dot = file_name.rfind(".")
        extension = file_name[dot + 1 :].translate(_ASCII_LOWER) if dot >= 0 else ""
    return MIMETYPE_MAPPING.get(extension, DEFAULT_MIMETYPE)


def mimepart(mimetype: str) -> str:
    """oc_filecache.mimepart text: what comes before the `/` (`image/png` → `image`; none → '')."""
    slash = mimetype.find("/")
    return mimetype[:slash] if slash >= 0 else ""
