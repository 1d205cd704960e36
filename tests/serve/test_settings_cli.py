"""Settings resolution, safe-by-default checks, and the serve / api-key commands."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from recog.errors import ConfigError
from recog.serve.auth import KeyStore, add_key, hash_key
from recog.serve.settings import default_model_name, load_settings


def test_precedence_defaults_file_env_flags(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: 9001\nmax_batch_size: 4\nmodels:\n  pets: {path: runs/pets/best, backend: torch}\n")
    s = load_settings(config_file=cfg, env={})
    assert (s.port, s.max_batch_size, s.host, s.max_body_bytes) == (9001, 4, "127.0.0.1", 10 * 1024 * 1024)
    assert s.models[0].name == "pets" and s.models[0].backend == "torch"
    s = load_settings(config_file=cfg, env={"RECOG_SERVE_PORT": "9002", "RECOG_SERVE_CORS_ORIGINS": "https://a.b"})
    assert s.port == 9002 and s.cors_origins == ("https://a.b",)
    s = load_settings(config_file=cfg, env={"RECOG_SERVE_PORT": "9002"}, port=9003, max_batch_size=None)
    assert s.port == 9003 and s.max_batch_size == 4
    s = load_settings(env={"RECOG_SERVE_MODELS": "a=x/a,runs/digits/best"})
    assert [(m.name, str(m.path)) for m in s.models] == [("a", "x/a"), ("digits", "runs/digits/best")]


def test_unknown_keys_and_bad_values_are_refused(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("max_batchsize: 4\n")
    with pytest.raises(ConfigError, match="max_batch_size"):
        load_settings(config_file=cfg, env={})
    with pytest.raises(ConfigError, match="RECOG_SERVE_PROT"):
        load_settings(env={"RECOG_SERVE_PROT": "1"})
    with pytest.raises(ConfigError, match="max_queue"):
        load_settings(env={}, max_queue=0)
    with pytest.raises(ConfigError, match="URL"):
        load_settings(env={}, models={"a:b": "x"})
    with pytest.raises(ConfigError, match=r"\*"):
        load_settings(env={}, cors_origins=("*",))


def test_only_loopback_without_api_keys(tmp_path):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert load_settings(env={}, host=host).host == host
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(ConfigError, match="API keys"):
            load_settings(env={}, host=host)
    keys = tmp_path / "keys.txt"
    add_key(keys, name="lb")
    assert load_settings(env={}, host="0.0.0.0", api_keys_file=keys).host == "0.0.0.0"


def test_key_file_is_hashed_and_checked(tmp_path):
    keys = tmp_path / "keys.txt"
    user, admin = add_key(keys, name="web"), add_key(keys, name="ops", role="admin")
    assert (keys.stat().st_mode & 0o777) == 0o600
    text = keys.read_text()
    assert user not in text and admin not in text and hash_key(user) in text
    store = KeyStore.from_file(keys)
    assert store.check(user).role == "user" and store.check(admin).role == "admin"
    keys.write_text(keys.read_text() + f"{user} user plain\n")
    with pytest.raises(ConfigError, match="plain keys are never stored"):
        KeyStore.from_file(keys)


def test_default_model_names():
    assert default_model_name("runs/pets/best") == "pets"
    assert default_model_name("models/flowers v2") == "flowers-v2"


def _app() -> typer.Typer:
    from recog.cli.serve import register

    app = typer.Typer()
    register(app)
    return app


def test_api_key_add_command(tmp_path):
    keys = tmp_path / "k.txt"
    result = CliRunner().invoke(_app(), ["api-key", "add", str(keys), "--name", "ops", "--admin"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    assert key.startswith("rk_") and KeyStore.from_file(keys).check(key).role == "admin"


def test_serve_refuses_public_bind_without_keys(tiny_bundle):
    result = CliRunner().invoke(_app(), ["serve", str(tiny_bundle), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "refusing to bind 0.0.0.0" in str(result.exception)


def test_serve_refuses_tampered_bundle_before_binding(tiny_bundle, tmp_path):
    import shutil

    from recog.errors import BundleIntegrityError

    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "config.json").write_text((bundle / "config.json").read_text() + " ")
    result = CliRunner().invoke(_app(), ["serve", str(bundle)])
    assert isinstance(result.exception, BundleIntegrityError)


def test_serve_is_a_recog_command():
    from recog.cli.main import COMMAND_MODULES

    assert "serve" in COMMAND_MODULES


def test_importing_recog_stays_cheap():
    import subprocess
    import sys

    code = ("import sys, recog; recog.Client; heavy = [m for m in ('torch', 'fastapi', 'uvicorn', 'cv2') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_predict_cli_against_a_running_server(live_server, photos, tmp_path, capsys):
    """`recog predict --server URL` sends files to a real server; failures are listed, exit code 1."""
    import json as _json

    from recog.cli.main import main

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    url = live_server if isinstance(live_server, str) else live_server.url
    try:
        main(["predict", "--server", url, str(photos["coffee"]), str(photos["rocket"]), str(bad),
              "--format", "jsonl", "-k", "2"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    rows = [_json.loads(line) for line in out.out.strip().splitlines()]
    assert code == 1
    assert [len(r["top"]) for r in rows if "top" in r] == [2, 2]
    assert any(r.get("error", {}).get("code") == "unsupported_format" for r in rows)
    assert "1 of 3 input(s) failed" in out.err


def test_allowed_hosts_and_open_faces_settings(tmp_path):
    s = load_settings(env={"RECOG_SERVE_ALLOWED_HOSTS": "recog.example.com, .corp.example"})
    assert s.allowed_hosts == ("recog.example.com", ".corp.example") and s.allow_open_faces is False
    assert s.warnings() == []
    for bad in ("https://recog.example.com", "recog.example.com:8000", "a/b"):
        with pytest.raises(ConfigError, match="allowed host"):
            load_settings(env={}, allowed_hosts=(bad,))
    s = load_settings(env={"RECOG_SERVE_ALLOW_OPEN_FACES": "true"}, allowed_hosts=("*",))
    assert s.allow_open_faces is True
    assert [w[:24] for w in s.warnings()] == ["face recognition is open", "the Host header check is"]
    keys = tmp_path / "keys.txt"
    add_key(keys, name="web")
    assert load_settings(env={}, allow_open_faces=True, api_keys_file=keys).warnings() == []  # keys still apply


def test_serve_passes_the_security_flags(tiny_bundle, monkeypatch):
    seen = []
    monkeypatch.setattr("recog.serve.server.serve", seen.append)
    result = CliRunner().invoke(_app(), ["serve", str(tiny_bundle), "--allow-open-faces", "--allowed-host",
                                         "recog.example.com", "--allowed-host", ".corp.example"])
    assert result.exit_code == 0, result.output
    assert seen[0].allow_open_faces is True and seen[0].allowed_hosts == ("recog.example.com", ".corp.example")
