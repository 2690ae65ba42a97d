"""Configuration loading: clear one-line errors naming the file and the key."""

import base64

import pytest

from gossipnode.config import ConfigError, parse_address
from gossipnode.config_file import load_config

GOOD = """
name = "pgp-a"
data_dir = "data"
listen = "127.0.0.1:7946"
join = ["10.0.0.2:7946", "[::1]:7000"]
secret_files = ["cluster.secret"]
[tags]
wep = true
[membership]
probe_interval_s = 2
"""


def write(tmp_path, text):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_good_config_loads_with_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.name == "pgp-a"
    assert config.data_dir == tmp_path / "data"
    assert config.join == (("10.0.0.2", 7946), ("::1", 7000))
    assert config.secret_files == (tmp_path / "cluster.secret",)
    assert config.tags.wep is True and config.tags.private_keys is True
    assert config.membership.probe_interval_s == 2.0
    assert config.control_socket_path == tmp_path / "data" / "control.sock"
    assert config.replication.tombstone_grace_s == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('colour = "blue"\n', "colour: unknown key"),
        ("[membership]\nprobe_intervall_s = 1\n", "membership.probe_intervall_s: unknown key"),
        ('[wire]\nframe_bytes_max = "big"\n', "wire.frame_bytes_max: expected an integer"),
        ("[wire]\nframe_bytes_max = -1\n", "wire.frame_bytes_max: must not be negative"),
        ("[tags]\nwep = 1\n", "tags.wep: expected true or false"),
        ('log_format = "xml"\n', "log_format: expected one of text, json"),
    ],
)
def test_bad_keys_name_the_file_and_the_key(tmp_path, change, message):
    text = GOOD.split("[tags]")[0] + change  # the top-level keys only, then the change
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_bad_address_and_missing_key(tmp_path):
    with pytest.raises(ConfigError, match=r"listen: bad address: 'nowhere' is not HOST:PORT"):
        load_config(write(tmp_path, GOOD.replace("127.0.0.1:7946", "nowhere")))
    with pytest.raises(ConfigError, match=r"join\[0\]: bad address: .*port must be 1-65535"):
        load_config(write(tmp_path, GOOD.replace("10.0.0.2:7946", "10.0.0.2:99999")))
    with pytest.raises(ConfigError, match="secret_files: missing"):
        load_config(write(tmp_path, GOOD.replace('secret_files = ["cluster.secret"]', "")))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "name = \n"))


def test_parse_address():
    assert parse_address("localhost:1") == ("localhost", 1)
    assert parse_address("[fe80::1]:80") == ("fe80::1", 80)
    for bad in ["::1:80", "host", ":80", "h:0", "h:x"]:
        with pytest.raises(ValueError):
            parse_address(bad)


def test_administrator_keys_are_pinned_as_base64_and_checked(tmp_path):
    first, second = bytes(range(32)), bytes(range(1, 33))
    keys = ", ".join(f'"{base64.b64encode(k).decode()}"' for k in (first, second))
    config = load_config(write(tmp_path, f"admin_keys = [{keys}]\n" + GOOD))
    assert config.admin_keys == (first, second)
    assert load_config(write(tmp_path, GOOD)).admin_keys == ()  # none: an open cluster
    for bad, reason in (('["not base64!"]', "not base64"),
                        (f'["{base64.b64encode(bytes(31)).decode()}"]', "31 bytes"),
                        ("[1]", "expected a base64 string"), ('"x"', "expected a list")):
        with pytest.raises(ConfigError, match=r"admin_keys.*" + reason):
            load_config(write(tmp_path, f"admin_keys = {bad}\n" + GOOD))


@pytest.mark.parametrize(
    ("section", "setting", "message"),
    [
        ("[replication]", "anti_entropy_interval_s = 0",
         "replication.anti_entropy_interval_s: must be positive, got 0.0"),
        ("[membership]", "gossip_interval_s = 0.0", "membership.gossip_interval_s: must be"),
        ("[replication]", "push_fanout = 0", "replication.push_fanout: must be positive"),
        ("[membership]", "probe_timeout_s = 3",
         "membership.probe_timeout_s: must be shorter than membership.probe_interval_s"),
        ("[reconcile]", "branching = 1", "reconcile.branching: must be at least 2"),
        ("[wire]", "frame_bytes_max = 2000000",
         "limits.record_bytes_max: a record of 1048576 bytes"),
        ("[reconcile]", "message_bytes_max = 3000000",
         "reconcile.message_bytes_max: must be at most half of wire.frame_bytes_max"),
        ("[replication]", "tombstone_grace_s = 5",
         "replication.tombstone_grace_s: must be longer than"),
        ("[storage]", 'durability = "never"',
         "storage.durability: expected one of fsync, periodic, got 'never'"),
        ("[storage]", "fsync_interval_ms = 0", "storage.fsync_interval_ms: must be positive"),
        ("[membership]", "members_max = 4097", "membership.members_max: must be at most 4096"),
    ],
)
def test_rules_across_settings_are_checked_at_load(tmp_path, section, setting, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace("[membership]\nprobe_interval_s = 2\n", "")
                          + f"\n{section}\n{setting}\n"))
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'node.toml'}: {message}"), text
    assert "\n" not in text


def test_zero_is_allowed_where_it_means_off(tmp_path):
    config = load_config(write(tmp_path, GOOD + "indirect_probes = 0\nawareness_max = 0\n"))
    assert config.membership.indirect_probes == 0


def test_log_level_and_metrics_listen(tmp_path):
    config = load_config(write(tmp_path, 'log_level = "debug"\n'
                               'metrics_listen = "127.0.0.1:9100"\n' + GOOD))
    assert config.log_level == "debug" and config.metrics_listen == ("127.0.0.1", 9100)
    for bad, key in (('log_level = "loud"', "log_level"),
                     ('metrics_listen = "127.0.0.1:7946"', "metrics_listen")):
        with pytest.raises(ConfigError, match=key):
            load_config(write(tmp_path, bad + "\n" + GOOD))


def test_reserved_tags_and_boolean_flags(tmp_path):
    for line, message in (("version = \"9\"", "tags.version: reserved"),
                          ("generation = \"2\"", "tags.generation: reserved"),
                          ("private_keys = \"yes\"", "tags.private_keys: expected true or false")):
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, GOOD.replace("wep = true", f"wep = true\n{line}")))


def test_durability_is_fsync_unless_periodic_is_asked_for(tmp_path):
    assert load_config(write(tmp_path, GOOD)).storage.durability == "fsync"
    config = load_config(write(tmp_path, GOOD + '[storage]\ndurability = "periodic"\n'
                               "fsync_interval_ms = 50\n"))
    assert (config.storage.durability, config.storage.fsync_interval_ms) == ("periodic", 50)
