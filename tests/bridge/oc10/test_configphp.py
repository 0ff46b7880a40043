"""bridge/oc10/configphp.py: parsing PHP literals safely, var_export output, OC10Config."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bridge.errors import LegacyInstanceError, OcbridgeError
from bridge.oc10.configphp import (
    ConfigPhpError,
    OC10Config,
    dump_config_php,
    load_config_php,
    parse_config_php,
)

# Hand-written in the exact layout of PHP 7.4 var_export(): two-space steps, "=> " followed by a
# newline before nested arrays, "0 => " keys for lists, NULL/true/false, floats with ".0".
GOLDEN_LINES = [
    "<?php",
    "$CONFIG = array (",
    "  'instanceid' => 'oc1a2b3c4d5e',",
    "  'passwordsalt' => 'Ab+/cdEFgh1234567890ABCDEFGHIJ',",
    "  'secret' => 'S3cr3t+/S3cr3t+/S3cr3t+/S3cr3t+/S3cr3t+/S3cr3t+/',",
    "  'trusted_domains' => ",
    "  array (",
    "    0 => 'localhost',",
    "    1 => 'cloud.example.com',",
    "  ),",
    "  'datadirectory' => '/var/www/owncloud/data',",
    "  'overwrite.cli.url' => 'https://cloud.example.com',",
    "  'dbtype' => 'mysql',",
    "  'version' => '10.16.4.0',",
    "  'dbname' => 'owncloud',",
    "  'dbhost' => 'db.example.com:3307',",
    "  'dbtableprefix' => 'oc_',",
    "  'mysql.utf8mb4' => true,",
    "  'dbuser' => 'oc_admin',",
    "  'dbpassword' => 'it\\'s a \\\\ secret',",
    "  'apps_paths' => ",
    "  array (",
    "    0 => ",
    "    array (",
    "      'path' => '/var/www/owncloud/apps',",
    "      'url' => '/apps',",
    "      'writable' => false,",
    "    ),",
    "  ),",
    "  'installed' => true,",
    "  'loglevel' => 2,",
    "  'redis' => ",
    "  array (",
    "    'host' => 'localhost',",
    "    'port' => 6379,",
    "    'timeout' => 0.0,",
    "  ),",
    "  'memcache.local' => NULL,",
    "  'empty' => ",
    "  array (",
    "  ),",
    ");",
    "",
]
GOLDEN = "\n".join(GOLDEN_LINES)
GOLDEN_DICT: dict[str, object] = {
    "instanceid": "oc1a2b3c4d5e",
    "passwordsalt": "Ab+/cdEFgh1234567890ABCDEFGHIJ",
    "secret": "S3cr3t+/S3cr3t+/S3cr3t+/S3cr3t+/S3cr3t+/S3cr3t+/",
    "trusted_domains": ["localhost", "cloud.example.com"],
    "datadirectory": "/var/www/owncloud/data",
    "overwrite.cli.url": "https://cloud.example.com",
    "dbtype": "mysql",
    "version": "10.16.4.0",
    "dbname": "owncloud",
    "dbhost": "db.example.com:3307",
    "dbtableprefix": "oc_",
    "mysql.utf8mb4": True,
    "dbuser": "oc_admin",
    "dbpassword": "it's a \\ secret",
    "apps_paths": [{"path": "/var/www/owncloud/apps", "url": "/apps", "writable": False}],
    "installed": True,
    "loglevel": 2,
    "redis": {"host": "localhost", "port": 6379, "timeout": 0.0},
    "memcache.local": None,
    "empty": [],
}


def php(body: str) -> dict[str, object]:
    return parse_config_php(f"<?php\n$CONFIG = {body};\n")


def value(literal: str) -> object:
    return php(f"array('v' => {literal})")["v"]


# --- parsing ------------------------------------------------------------------------------------


def test_parses_var_export_output() -> None:
    assert parse_config_php(GOLDEN) == GOLDEN_DICT


def test_dump_reproduces_var_export_byte_for_byte() -> None:
    assert dump_config_php(GOLDEN_DICT) == GOLDEN


@pytest.mark.parametrize(
    "cfg",
    [
        GOLDEN_DICT,
        {},
        {"a": [[], [[1]], {"x": {"y": [None, True, False]}}]},
        {"odd": {5: "five", "k": "v", -1: "minus"}, "f": [0.5, 1.0, -2.25, 1e20, 1e-7]},
        {"s": "quote ' backslash \\ nul \0 newline \n unicode äöü 😀 dollar $x"},
        {"big": 2**63 - 1, "small": -(2**63)},
    ],
)
def test_round_trip(cfg: dict[str, object]) -> None:
    assert parse_config_php(dump_config_php(cfg)) == cfg


def test_short_arrays_nested_without_keys_and_trailing_commas() -> None:
    assert php("['a' => [1, [2, 3,], ['k' => 'v',],], 'b' => [],]") == {
        "a": [1, [2, 3], {"k": "v"}],
        "b": [],
    }


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("[5 => 'a', 'b']", {5: "a", 6: "b"}),
        ("[-5 => 'a', 'b']", {-5: "a", 0: "b"}),  # PHP 7.4: negative keys don't move the index
        ("['x', 7 => 'y', 'z']", {0: "x", 7: "y", 8: "z"}),
        ("['3' => 'x']", {3: "x"}),  # canonical decimal strings become integer keys
        ("['03' => 'x', '-0' => 'y', '1.5' => 'z']", {"03": "x", "-0": "y", "1.5": "z"}),
        ("[true => 'a', false => 'b', null => 'c', 1.7 => 'd']", {1: "d", 0: "b", "": "c"}),
        ("['k' => 1, 'j' => 2, 'k' => 3]", {"k": 3, "j": 2}),  # overwrite keeps the position
        ("[0 => 'a', 1 => 'b']", ["a", "b"]),
        ("[1 => 'a', 0 => 'b']", {1: "a", 0: "b"}),  # not in order → not a list
    ],
)
def test_php_array_keys(literal: str, expected: object) -> None:
    result = value(literal)
    assert result == expected
    if isinstance(expected, dict):
        assert list(result.keys()) == list(expected.keys())  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'plain'", "plain"),
        (r"'a\\b\'c\n'", "a\\b'c\\n"),  # single quotes: only \\ and \' are escapes
        (r'"a\nb\tc\\d\"e\$f"', 'a\nb\tc\\d"e$f'),
        (r'"\x41\101\u{e4}\u{1F600}"', "AAä😀"),
        (r'"\q\x"', "\\q\\x"),  # unknown escapes keep their backslash
        ('"costs $5 {not a var}"', "costs $5 {not a var}"),
        ("'multi\nline'", "multi\nline"),
        (r'"\e\v\f\r"', "\x1b\v\f\r"),
        (r'"\400"', "\0"),  # octal escapes wrap at a byte
        (r'"\xff"', "\udcff"),  # a raw non-UTF-8 byte survives via surrogateescape
        ("'a' . 'b' . 3 . 1.5 . true . null", "ab31.51"),
    ],
)
def test_strings(literal: str, expected: str) -> None:
    assert value(literal) == expected


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("42", 42),
        ("-42", -42),
        ("+7", 7),
        ("- 3", -3),
        ("0x1F", 31),
        ("0755", 493),
        ("0b101", 5),
        ("1_000_000", 1000000),
        ("0", 0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("-1.5E-3", -0.0015),
        ("9223372036854775807", 9223372036854775807),
        ("9223372036854775808", 9.223372036854775808e18),  # overflow → float, as PHP
        ("-9223372036854775807-1", -(2**63)),  # how var_export writes PHP_INT_MIN
        ("60 * 60 * 24", 86400),  # config.sample.php style
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3.5),
        ("8 / 2", 4),
        ("-7 % 3", -1),
        ("INF", float("inf")),
        ("PHP_INT_MAX", 2**63 - 1),
    ],
)
def test_numbers(literal: str, expected: object) -> None:
    result = value(literal)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [("true", True), ("TRUE", True), ("True", True), ("false", False), ("FaLsE", False),
     ("null", None), ("NULL", None), ("\\true", True)],
)
def test_constants_in_any_case(literal: str, expected: object) -> None:
    assert value(literal) is expected


def test_comments_everywhere() -> None:
    text = """<?php
    # hash comment
    // line comment
    /* block
       comment */
    $CONFIG = array ( // after the paren
      'a' => 1, # trailing
      /* inline */ 'b' => /* between */ 2,
      'url' => 'http://not-a-comment.example/#x', // the // inside the string is text
    );
    """
    assert parse_config_php(text) == {"a": 1, "b": 2, "url": "http://not-a-comment.example/#x"}


def test_assignment_statements_after_the_array() -> None:
    text = """<?php
    $CONFIG = array ('a' => 1, 'nested' => array('x' => 1));
    $CONFIG['b'] = 'two';
    $CONFIG['a'] = 'replaced';
    $CONFIG['nested']['y'] = 2;
    $CONFIG['created']['deep'] = true;
    $CONFIG['trusted_domains'][] = 'one';
    $CONFIG['trusted_domains'][] = 'two';
    $CONFIG["dq"] = "x";
    """
    assert parse_config_php(text) == {
        "a": "replaced",
        "nested": {"x": 1, "y": 2},
        "b": "two",
        "created": {"deep": True},
        "trusted_domains": ["one", "two"],
        "dq": "x",
    }


def test_file_made_only_of_assignments() -> None:
    assert parse_config_php("<?php\n$CONFIG['x'] = 1;\n$CONFIG['y'] = [2];\n") == {
        "x": 1,
        "y": [2],
    }


def test_closing_tag_and_surrounding_text() -> None:
    text = "\ufeffleading text <?php $CONFIG = ['a' => 1] ?>\nhtml <?PHP\n$CONFIG['b'] = 2; ?>tail"
    assert parse_config_php(text) == {"a": 1, "b": 2}


def test_line_comment_ends_at_closing_tag() -> None:
    assert parse_config_php("<?php $CONFIG = ['a' => 1]; // note ?> text") == {"a": 1}


def test_non_array_config_is_ignored_like_oc10() -> None:
    assert parse_config_php("<?php $CONFIG = 'nope';") == {}
    assert parse_config_php("<?php // nothing here\n") == {}
    assert parse_config_php("no php at all") == {}


def test_server_root_and_dir_constants(tmp_path: Path) -> None:
    text = "<?php $CONFIG = ['apps' => \\OC::$SERVERROOT . '/apps', 'here' => __DIR__];"
    result = parse_config_php(text, tmp_path / "config.php", server_root="/srv/owncloud")
    assert result == {"apps": "/srv/owncloud/apps", "here": str(tmp_path)}


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("<?php\n$CONFIG = array (\n  'a' => 1\n  'b' => 2,\n);", 4, 3, "expected ',' or ')'"),
        ("<?php\n$CONFIG = ['a' => 'unterminated];\n", 2, 19, "unterminated single-quoted"),
        ('<?php\n$CONFIG = ["a" => "x $name"];', 2, 22, "variables inside double-quoted"),
        ("<?php\n$CONFIG = ['a' => getenv('X')];", 2, 19, "without running PHP"),
        ("<?php\n$other = 1;", 2, 1, "only $CONFIG"),
        ("<?php\nfunction f() {}", 2, 1, "unsupported PHP statement"),
        ("<?php\n$CONFIG = ['a' => 1]", 2, 21, "expected ';'"),
        ("<?php\n/* open", 2, 1, "unterminated /* comment"),
        ("<?php\n$CONFIG = [08];", 2, 12, "invalid octal"),
        ("<?php\n$CONFIG = [1 / 0];", 2, 14, "division by zero"),
        ("<?php\n$CONFIG = [<<<EOT\nx\nEOT\n];", 2, 12, "heredoc"),
        ("<?php\n$CONFIG = [[] => 1];", 2, 12, "cannot be an array key"),
        ("<?php\n$CONFIG = 'text';\n$CONFIG['a'] = 1;", 3, 8, "not an array"),
        ("<?php\n$CONFIG = ['a' => -'x'];", 2, 19, "needs a number"),
        ("<?php\n$CONFIG = ['a' => 1 @ 2];", 2, 21, "unexpected character '@'"),
    ],
)
def test_errors_name_line_and_column(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(ConfigPhpError) as info:
        parse_config_php(text, "/etc/oc/config.php")
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert fragment in err.message
    assert str(err).startswith(f"/etc/oc/config.php:{line}:{column}: ")


def test_error_is_a_value_error_and_part_of_the_tree() -> None:
    with pytest.raises(ConfigPhpError) as info:
        php("[")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LegacyInstanceError)
    assert isinstance(info.value, OcbridgeError)


# --- files ----------------------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_load_merges_extra_configs_in_natural_order(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    write(config_dir / "config.php", "<?php $CONFIG = ['last' => 'main', 'keep' => 1, 'main'];")
    for name in ("b", "a", "10", "9"):
        write(
            config_dir / f"{name}.config.php",
            f"<?php $CONFIG = ['last' => '{name}', 'only_{name}' => true, 0 => '{name}'];",
        )
    write(config_dir / ".hidden.config.php", "<?php $CONFIG = ['last' => 'hidden'];")
    (config_dir / "dir.config.php").mkdir()
    write(config_dir / "unused.php", "<?php $CONFIG = ['last' => 'unused'];")
    write(config_dir / "nothing.config.php", "<?php $CONFIG = 'not an array';")

    for where in (tmp_path, config_dir, config_dir / "config.php"):
        merged = load_config_php(where)
        # nothing.config.php sorts last but holds no array, so b.config.php wins
        assert merged["last"] == "b"
        assert merged["keep"] == 1
        assert {"only_a", "only_b", "only_9", "only_10"} <= merged.keys()
        # array_merge renumbers integer keys, which shows the merge order
        numbered = [merged[k] for k in merged if k.isdigit()]
        assert numbered == ["main", "9", "10", "a", "b"]


def test_merge_replaces_nested_arrays_wholesale(tmp_path: Path) -> None:
    write(tmp_path / "config.php", "<?php $CONFIG = ['redis' => ['host' => 'a', 'port' => 1]];")
    write(tmp_path / "redis.config.php", "<?php $CONFIG = ['redis' => ['host' => 'b']];")
    assert load_config_php(tmp_path / "config.php") == {"redis": {"host": "b"}}


def test_load_resolves_server_root(tmp_path: Path) -> None:
    write(tmp_path / "config" / "config.php", "<?php $CONFIG = ['a' => OC::$SERVERROOT.'/apps'];")
    assert load_config_php(tmp_path) == {"a": f"{tmp_path}/apps"}


def test_load_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigPhpError, match="no config.php here"):
        load_config_php(tmp_path)


def test_load_reports_the_failing_file(tmp_path: Path) -> None:
    write(tmp_path / "config.php", "<?php $CONFIG = [];")
    write(tmp_path / "broken.config.php", "<?php\n$CONFIG = [\n'a' => ,\n];")
    with pytest.raises(ConfigPhpError) as info:
        load_config_php(tmp_path)
    assert info.value.path == tmp_path / "broken.config.php"
    assert info.value.line == 3


# --- dump ---------------------------------------------------------------------------------------


def test_dump_scalars_like_var_export() -> None:
    text = dump_config_php(
        {"f": 1.0, "g": 0.1, "h": 1e25, "i": -0.0, "n": None, "s": "a'b\\c", "z": "x\0y", "5": 1}
    )
    assert text == (
        "<?php\n$CONFIG = array (\n"
        "  'f' => 1.0,\n"
        "  'g' => 0.1,\n"
        "  'h' => 1.0E+25,\n"
        "  'i' => -0.0,\n"
        "  'n' => NULL,\n"
        "  's' => 'a\\'b\\\\c',\n"
        "  'z' => 'x' . \"\\0\" . 'y',\n"
        "  5 => 1,\n"
        ");\n"
    )


def test_dump_rejects_what_php_cannot_hold() -> None:
    with pytest.raises(TypeError):
        dump_config_php({"x": {1, 2}})
    with pytest.raises(ValueError):
        dump_config_php({"x": 2**64})


# --- OC10Config -------------------------------------------------------------------------------


def config(**overrides: object) -> OC10Config:
    base = dict(GOLDEN_DICT)
    base.update(overrides)
    return OC10Config.from_dict({k: v for k, v in base.items() if v is not ...})


def test_from_file_reads_the_settings(tmp_path: Path) -> None:
    write(tmp_path / "config" / "config.php", GOLDEN)
    cfg = OC10Config.from_file(tmp_path)
    assert cfg.instanceid == "oc1a2b3c4d5e"
    assert cfg.passwordsalt == "Ab+/cdEFgh1234567890ABCDEFGHIJ"
    assert cfg.datadirectory == Path("/var/www/owncloud/data")
    assert (cfg.dbtype, cfg.dbname, cfg.dbhost, cfg.dbport, cfg.dbsocket) == (
        "mysql", "owncloud", "db.example.com", 3307, None,
    )
    assert (cfg.dbuser, cfg.dbpassword) == ("oc_admin", "it's a \\ secret")
    assert cfg.dbtableprefix == "oc_"
    assert cfg.version == "10.16.4.0"
    assert cfg.trusted_domains == ("localhost", "cloud.example.com")
    assert cfg.overwrite_cli_url == "https://cloud.example.com"
    assert (cfg.data_fingerprint, cfg.share_folder) == ("", "/")
    assert (cfg.strict_login_enforced, cfg.token_auth_enforced) == (False, False)
    assert cfg.raw["redis"] == {"host": "localhost", "port": 6379, "timeout": 0.0}
    assert cfg.path == tmp_path / "config" / "config.php"


def test_repr_hides_secrets() -> None:
    text = repr(config())
    assert "S3cr3t" not in text and "secret'" not in text and "Ab+/cd" not in text
    assert "oc1a2b3c4d5e" in text


def test_missing_required_keys_are_listed_together() -> None:
    with pytest.raises(ConfigPhpError) as info:
        OC10Config.from_dict({"dbtype": "mysql", "datadirectory": ["not", "a", "string"]})
    message = info.value.message
    for key in ("instanceid", "secret", "version"):
        assert repr(key) in message
    assert "'datadirectory' must be a string" in message


def test_null_counts_as_missing() -> None:
    with pytest.raises(ConfigPhpError, match="'secret'"):
        config(secret=None)


def test_unknown_dbtype() -> None:
    with pytest.raises(ConfigPhpError, match="'dbtype' is 'mssql'"):
        config(dbtype="mssql")


def test_defaults_and_php_conversions() -> None:
    cfg = config(
        dbtableprefix=...,
        dbname=...,
        dbuser=...,
        dbpassword=12345,
        passwordsalt=...,
        share_folder="/Shares",
        **{"data-fingerprint": "8d2c1b6f0c8a4b3e9f1e2d3c4b5a6978", "overwrite.cli.url": ...},
    )
    assert (cfg.dbtableprefix, cfg.dbname, cfg.dbuser, cfg.dbpassword) == (
        "oc_", "owncloud", "", "12345",
    )
    assert cfg.passwordsalt == ""
    assert cfg.share_folder == "/Shares"
    assert cfg.data_fingerprint == "8d2c1b6f0c8a4b3e9f1e2d3c4b5a6978"
    assert cfg.overwrite_cli_url is None


@pytest.mark.parametrize(
    ("raw", "strict"),
    [(True, True), (False, False), ("true", False), (1, False), (None, False)],
)
def test_strict_login_needs_boolean_true(raw: object, strict: bool) -> None:
    assert config(strict_login_enforced=raw).strict_login_enforced is strict


@pytest.mark.parametrize(
    ("raw", "enforced"),
    [(True, True), (False, False), ("true", True), ("false", True), ("0", False), ("", False),
     (0, False), (1, True), (None, False)],
)
def test_token_auth_enforced_uses_php_truthiness(raw: object, enforced: bool) -> None:
    assert config(token_auth_enforced=raw).token_auth_enforced is enforced


@pytest.mark.parametrize(
    ("dbhost", "host", "port", "socket"),
    [
        ("db.example.com:3307", "db.example.com", 3307, None),
        ("localhost:/run/mysqld/mysqld.sock", "localhost", None, "/run/mysqld/mysqld.sock"),
        ("localhost", "localhost", None, None),
        ("", "", None, None),
        (":3306", ":3306", None, None),  # strpos() == 0 is falsy in PHP: no split
        ("::1", "::1", None, None),
        ("host:", "host", None, None),
    ],
)
def test_dbhost_split(dbhost: str, host: str, port: int | None, socket: str | None) -> None:
    cfg = config(dbhost=dbhost)
    assert (cfg.dbhost, cfg.dbport, cfg.dbsocket) == (host, port, socket)


def test_mysql_url_quotes_credentials() -> None:
    cfg = config(dbuser="oc admin", dbpassword="p@ss:w/rd%?#&=+")
    url = cfg.database_url()
    assert url == (
        "mysql+pymysql://oc%20admin:p%40ss%3Aw%2Frd%25%3F%23%26%3D%2B"
        "@db.example.com:3307/owncloud?charset=utf8mb4"
    )
    parsed = make_url(url)
    assert (parsed.username, parsed.password) == ("oc admin", "p@ss:w/rd%?#&=+")
    assert (parsed.host, parsed.port, parsed.database) == ("db.example.com", 3307, "owncloud")


def test_mysql_url_with_socket() -> None:
    url = config(dbhost="localhost:/run/mysqld/mysqld.sock").database_url()
    assert url == (
        "mysql+pymysql://oc_admin:it%27s%20a%20%5C%20secret@localhost/owncloud"
        "?charset=utf8mb4&unix_socket=%2Frun%2Fmysqld%2Fmysqld.sock"
    )
    assert make_url(url).query == {"charset": "utf8mb4", "unix_socket": "/run/mysqld/mysqld.sock"}


def test_mysql_url_ipv6_host_and_no_credentials() -> None:
    url = config(dbhost="::1", dbuser="", dbpassword="").database_url()
    assert url == "mysql+pymysql://[::1]/owncloud?charset=utf8mb4"
    assert make_url(url).host == "::1"


def test_pgsql_urls() -> None:
    cfg = config(dbtype="pgsql", dbhost="pg:5433", dbuser="u", dbpassword="p", dbname="oc")
    assert cfg.database_url() == "postgresql+psycopg://u:p@pg:5433/oc"
    sock = config(dbtype="pgsql", dbhost="/var/run/postgresql", dbuser="u", dbpassword="")
    assert sock.database_url() == "postgresql+psycopg://u@/owncloud?host=%2Fvar%2Frun%2Fpostgresql"
    assert make_url(sock.database_url()).query == {"host": "/var/run/postgresql"}


def test_sqlite_url_lives_in_the_data_directory() -> None:
    cfg = config(dbtype="sqlite", dbname="owncloud", datadirectory="/var/www/owncloud/data/")
    assert cfg.dbtype == "sqlite3"
    assert cfg.database_url() == "sqlite:////var/www/owncloud/data/owncloud.db"
    spaced = config(dbtype="sqlite3", dbname="my db", datadirectory="/srv/oc data")
    assert make_url(spaced.database_url()).database == "/srv/oc data/my db.db"


def test_oracle_is_refused_clearly() -> None:
    cfg = config(dbtype="oci")
    with pytest.raises(ConfigPhpError, match="'oci' .*not supported"):
        cfg.database_url()
