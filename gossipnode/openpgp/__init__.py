"""OpenPGP at the edge of gossipnode: key files in, record values out.

`keys` wraps pysequoia (parsing, secret detection, record values, key generation);
`packets` is a pure-Python packet walker that backs up the secret-key check. The sans-IO
core never imports this package.
"""

from gossipnode.openpgp.keys import (
    FILE_BYTES_MAX,
    KEY_BYTES_MAX,
    KEYS_PER_FILE_MAX,
    SEQUOIA_PARSES_PER_CHECK_MAX,
    KeyParseError,
    ParsedKey,
    consumer_value,
    contains_secret_key_material,
    generate_key,
    private_key_value,
    split_keys,
    value_holds_secret,
)

__all__ = [
    "FILE_BYTES_MAX",
    "KEYS_PER_FILE_MAX",
    "KEY_BYTES_MAX",
    "SEQUOIA_PARSES_PER_CHECK_MAX",
    "KeyParseError",
    "ParsedKey",
    "consumer_value",
    "contains_secret_key_material",
    "generate_key",
    "private_key_value",
    "split_keys",
    "value_holds_secret",
]
