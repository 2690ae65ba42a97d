"""The setup verbs: datasets, keygen, init, validate."""

import base64
import json
import stat
import subprocess
import sys

import pytest

from gossipnode.cli import main


def run(*args):
    """Run the real console entry point in a child, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "gossipnode.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_datasets_json_lists_the_catalog(capsys):
    assert main(["datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 17
    scopes = {row["name"]: row["scope"] for row in rows}
    assert scopes["private_keys"] == "private-key-eligible"
    assert scopes["web_messenger"] == "wep-placement"
    assert [n for n, s in scopes.items() if s == "local"] == [
        "network",
        "tls_certificates",
        "mail_routes",
        "mail_proxies",
    ]
    assert sum(1 for s in scopes.values() if s != "local") == 13
    assert all(set(row) == {"name", "scope", "description"} for row in rows)


def test_keygen_stdout_and_file(tmp_path, capsys):
    assert main(["keygen"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32
    out = tmp_path / "cluster.secret"
    assert main(["keygen", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(base64.b64decode(out.read_text().strip())) == 32
    assert main(["keygen", "--out", str(out)]) == 2  # never overwrites


def test_init_then_validate(tmp_path):
    secret = tmp_path / "cluster.secret"
    assert run("keygen", "--out", str(secret)).returncode == 0
    data = tmp_path / "node-a"
    made = run(
        "init",
        "--data-dir",
        str(data),
        "--name",
        "pgp-a",
        "--listen",
        "127.0.0.1:7001",
        "--join",
        "127.0.0.1:7002",
        "--secret-file",
        str(secret),
        "--wep",
        "--no-private-keys",
        "--open",
    )
    assert made.returncode == 0, made.stderr
    node_id = made.stdout.strip()
    assert len(node_id.replace("-", "")) == 52
    assert stat.S_IMODE((data / "identity.key").stat().st_mode) == 0o600
    text = (data / "node.toml").read_text()
    assert "wep = true" in text and "private_keys = false" in text
    assert 'control_socket = "control.sock"' in text
    checked = run("validate", "--config", str(data / "node.toml"))
    assert checked.returncode == 0, checked.stderr
    assert node_id in checked.stdout
    again = run(
        "init",
        "--data-dir",
        str(data),
        "--name",
        "pgp-a",
        "--listen",
        "127.0.0.1:7001",
        "--secret-file",
        str(secret),
        "--open",
    )
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "bogus = 1\n", "bogus: unknown key"),
        (lambda t: t.replace('listen = "127.0.0.1:7001"', 'listen = "x"'), "listen: bad address"),
    ],
)
def test_validate_reports_one_clear_line(tmp_path, edit, message):
    secret = tmp_path / "cluster.secret"
    main(["keygen", "--out", str(secret)])
    data = tmp_path / "n"
    main(
        [
            "init",
            "--data-dir",
            str(data),
            "--name",
            "a",
            "--listen",
            "127.0.0.1:7001",
            "--secret-file",
            str(secret),
            "--open",
        ]
    )
    config = data / "node.toml"
    config.write_text(edit(config.read_text()))
    checked = run("validate", "--config", str(config))
    assert checked.returncode == 2
    assert message in checked.stderr
    assert checked.stderr.count("\n") == 1 and "Traceback" not in checked.stderr


def test_init_with_a_bad_secret_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "secret"
    bad.write_text("not base64!")
    result = run(
        "init",
        "--data-dir",
        str(tmp_path / "n"),
        "--name",
        "a",
        "--listen",
        "127.0.0.1:7001",
        "--secret-file",
        str(bad),
        "--open",
    )
    assert result.returncode == 2
    assert "is not base64" in result.stderr
    result = run("validate", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_init_is_secure_by_default(tmp_path):
    """Without an administrator key, init refuses unless the operator asks for an open node."""
    secret = tmp_path / "cluster.secret"
    assert run("keygen", "--out", str(secret)).returncode == 0
    base = ["init", "--name", "a", "--listen", "127.0.0.1:7001", "--secret-file", str(secret)]
    refused = run(*base, "--data-dir", str(tmp_path / "n"))
    assert refused.returncode == 2 and "--admin-pubkey" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert not (tmp_path / "n" / "node.toml").exists()
    opened = run(*base, "--data-dir", str(tmp_path / "o"), "--open")
    assert opened.returncode == 0 and "trusts every holder" in opened.stderr
