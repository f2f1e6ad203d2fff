"""Directory precedence: flag > TAUON_* > systemd directories > XDG > defaults (the flag is the CLI's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tauon import settings as settings_module
from tauon.cli import build_parser, settings_from_args
from tauon.cpus import usable_cpus
from tauon.settings import Settings, default_cache_dir, default_state_root, default_watch_dir

HOME = Path("/home/op")
ALL = {
    "TAUON_STATE_DIR": "/t/state", "TAUON_CACHE_DIR": "/t/cache", "TAUON_WATCH_DIR": "/t/apps",
    "STATE_DIRECTORY": "/var/lib/tauon:/var/lib/other", "CACHE_DIRECTORY": "/var/cache/tauon",
    "CONFIGURATION_DIRECTORY": "/etc/tauon", "XDG_STATE_HOME": "/x/state", "XDG_CACHE_HOME": "/x/cache",
}


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in ALL.items() if k not in names}


@pytest.mark.parametrize(("env", "state", "cache"), [
    (ALL, "/t/state", "/t/cache"),
    (_without("TAUON_STATE_DIR", "TAUON_CACHE_DIR"), "/var/lib/tauon", "/var/cache/tauon"),
    (_without("TAUON_STATE_DIR", "TAUON_CACHE_DIR", "STATE_DIRECTORY", "CACHE_DIRECTORY"),
     "/x/state/tauon", "/x/cache/tauon"),
    ({}, "/home/op/.local/state/tauon", "/home/op/.cache/tauon"),
    ({"TAUON_STATE_DIR": "", "STATE_DIRECTORY": "", "XDG_STATE_HOME": ""},  # empty means unset
     "/home/op/.local/state/tauon", "/home/op/.cache/tauon"),
], ids=["tauon-env", "systemd", "xdg", "defaults", "empty-values"])
def test_state_and_cache_precedence(env: dict[str, str], state: str, cache: str) -> None:
    assert default_state_root(env, HOME) == Path(state)
    assert default_cache_dir(env, HOME) == Path(cache)


def test_watch_dir_precedence() -> None:
    assert default_watch_dir(ALL) == Path("/t/apps")
    assert default_watch_dir(_without("TAUON_WATCH_DIR")) == Path("/etc/tauon/apps.d")
    assert default_watch_dir({"XDG_CONFIG_HOME": "/x/config"}) == Path("tauon")


def test_flags_beat_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in ALL.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args([str(tmp_path / "w"), "--state-root", str(tmp_path / "s"),
                                      "--cache-dir", str(tmp_path / "c")])
    settings = settings_from_args(args)
    assert (settings.watch_dir, settings.state_root, settings.cache_dir) == (
        tmp_path / "w", tmp_path / "s", tmp_path / "c")
    without_flags = settings_from_args(build_parser().parse_args([]))
    assert (without_flags.watch_dir, without_flags.state_root, without_flags.cache_dir) == (
        Path("/t/apps"), Path("/t/state"), Path("/t/cache"))


def test_admin_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAUON_ADMIN", "127.0.0.1:9180")
    settings = settings_from_args(build_parser().parse_args([]))
    assert settings.admin is not None and str(settings.admin) == "127.0.0.1:9180"
    settings = settings_from_args(build_parser().parse_args(["--admin", "[::1]:9181"]))
    assert settings.admin is not None and (settings.admin.host, settings.admin.port) == ("::1", 9181)
    monkeypatch.delenv("TAUON_ADMIN")
    assert settings_from_args(build_parser().parse_args([])).admin is None


def test_bad_admin_address_names_the_option() -> None:
    with pytest.raises(SystemExit, match=r"--admin: .*port '99999' is not a number from 1 to 65535"):
        settings_from_args(build_parser().parse_args(["--admin", "127.0.0.1:99999"]))


def test_apps_file_excludes_a_directory_and_sets_the_reference_base(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="either a directory to watch or --apps FILE"):
        settings_from_args(build_parser().parse_args([str(tmp_path), "--apps", "x.json"]))
    settings = settings_from_args(build_parser().parse_args(["--apps", str(tmp_path / "etc" / "l.json")]))
    assert settings.apps_file == tmp_path / "etc" / "l.json"
    assert settings.reference_base == tmp_path / "etc"
    plain = Settings(watch_dir=tmp_path / "w", state_root=tmp_path, cache_dir=tmp_path)
    assert plain.reference_base == tmp_path / "w"


def test_pool_and_run_slot_flags() -> None:
    settings = settings_from_args(build_parser().parse_args(
        ["--instance-pool", "50", "--keep-resident-mib", "8", "--running-guests", "3"]))
    assert settings.pool.instances == 50 and settings.pool.keep_resident_mib == 8
    assert settings.running_guests == 3
    defaults = settings_from_args(build_parser().parse_args([]))
    assert defaults.pool.instances == 1000 and defaults.pool.keep_resident_mib == 32
    # The CPUs tauon may use, shared out among the serving processes (rounded up).
    cpus = usable_cpus()
    assert defaults.running_guests == -(-cpus // defaults.workers)
    assert settings_from_args(build_parser().parse_args(["--workers", "1"])).running_guests == cpus
    many = settings_from_args(build_parser().parse_args(["--workers", str(cpus + 3)]))
    assert many.running_guests == 1
    assert not settings_from_args(build_parser().parse_args(["--instance-pool", "0"])).pool.enabled
    for bad, message in ((["--instance-pool", "-1"], "--instance-pool must be >= 0"),
                         (["--keep-resident-mib", "-5"], "--keep-resident-mib must be >= 0"),
                         (["--running-guests", "0"], "--running-guests must be >= 1")):
        with pytest.raises(SystemExit, match=message):
            settings_from_args(build_parser().parse_args(bad))


def test_workers_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAUON_WORKERS", raising=False)
    monkeypatch.setattr(settings_module, "usable_cpus", lambda: 6)
    assert settings_from_args(build_parser().parse_args([])).workers == 6  # default: auto
    assert settings_from_args(build_parser().parse_args(["--workers", "3"])).workers == 3
    assert settings_from_args(build_parser().parse_args(["--workers", "1"])).workers == 1
    monkeypatch.setenv("TAUON_WORKERS", "1")
    assert settings_from_args(build_parser().parse_args([])).workers == 1  # the daemon alone serves
    monkeypatch.setenv("TAUON_WORKERS", "auto")
    assert settings_from_args(build_parser().parse_args([])).workers == 6
    with pytest.raises(SystemExit, match=r"--workers: 'lots' is neither a number nor 'auto'"):
        settings_from_args(build_parser().parse_args(["--workers", "lots"]))
    with pytest.raises(SystemExit, match=r"--workers: must be >= 1"):
        settings_from_args(build_parser().parse_args(["--workers", "0"]))


def test_warm_slots_are_shared_among_processes() -> None:
    # The resident-memory bound (warm slots x keep-resident) must not grow with --workers.
    def warm(workers: str) -> int:
        return settings_from_args(build_parser().parse_args(["--workers", workers])).pool.warm_slots

    assert warm("1") == 32
    assert warm("2") == 16
    assert warm("3") == 11
    assert warm("64") == 1


def test_max_request_head_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAUON_MAX_REQUEST_HEAD", raising=False)
    def head(*argv: str) -> int:
        return settings_from_args(build_parser().parse_args(list(argv))).max_request_head

    assert head() == 8192 + 4096 * 100  # hyper's default max_buf_size, as Spin serves
    assert head("--max-request-head", "65536") == 65536
    assert head("--max-request-head", "64KiB") == 65536
    assert head("--max-request-head", "1MiB") == 1024 * 1024
    monkeypatch.setenv("TAUON_MAX_REQUEST_HEAD", "32K")
    assert head() == 32 * 1024
    assert head("--max-request-head", "16KiB") == 16 * 1024  # the flag wins
    with pytest.raises(SystemExit, match=r"--max-request-head: 'lots' is not a size in bytes"):
        head("--max-request-head", "lots")
    with pytest.raises(SystemExit, match=r"--max-request-head: must be at least 8192 bytes"):
        head("--max-request-head", "4096")


def test_compile_limits_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAUON_COMPILE_MEMORY_MIB", raising=False)
    monkeypatch.delenv("TAUON_COMPILE_TIMEOUT", raising=False)
    defaults = settings_from_args(build_parser().parse_args([])).compile
    assert (defaults.memory_mib, defaults.timeout) == (1536, 300.0)
    flagged = settings_from_args(build_parser().parse_args(
        ["--compile-memory-mib", "768", "--compile-timeout", "30"])).compile
    assert (flagged.memory_mib, flagged.timeout) == (768, 30.0)
    monkeypatch.setenv("TAUON_COMPILE_MEMORY_MIB", "2048")
    monkeypatch.setenv("TAUON_COMPILE_TIMEOUT", "90")
    from_env = settings_from_args(build_parser().parse_args([])).compile
    assert (from_env.memory_mib, from_env.timeout) == (2048, 90.0)
    assert settings_from_args(build_parser().parse_args(["--compile-timeout", "5"])).compile.timeout == 5.0
    for bad, message in ((["--compile-memory-mib", "100"], "--compile-memory-mib must be >= 256"),
                         (["--compile-timeout", "0"], "--compile-timeout must be > 0")):
        with pytest.raises(SystemExit, match=message):
            settings_from_args(build_parser().parse_args(bad))
    monkeypatch.setenv("TAUON_COMPILE_MEMORY_MIB", "lots")
    with pytest.raises(SystemExit):  # argparse: invalid int value
        build_parser().parse_args([])


def test_runtime_config_from_flag_env_or_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TAUON_RUNTIME_CONFIG", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    assert settings_from_args(build_parser().parse_args([])).runtime_config is None
    (tmp_path / "runtime-config.toml").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    credential = settings_from_args(build_parser().parse_args([])).runtime_config
    assert credential == tmp_path / "runtime-config.toml"
    monkeypatch.setenv("TAUON_RUNTIME_CONFIG", "/etc/tauon/rc.toml")
    assert settings_from_args(build_parser().parse_args([])).runtime_config == Path("/etc/tauon/rc.toml")
    flag = settings_from_args(build_parser().parse_args(["--runtime-config", "/srv/rc.toml"]))
    assert flag.runtime_config == Path("/srv/rc.toml")


def test_tiering_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAUON_TIERING", raising=False)
    assert settings_from_args(build_parser().parse_args([])).tiering is True
    assert settings_from_args(build_parser().parse_args(["--tiering", "off"])).tiering is False
    monkeypatch.setenv("TAUON_TIERING", "off")
    assert settings_from_args(build_parser().parse_args([])).tiering is False
    assert settings_from_args(build_parser().parse_args(["--tiering", "on"])).tiering is True
    monkeypatch.setenv("TAUON_TIERING", "maybe")
    with pytest.raises(SystemExit, match=r"TIERING\) must be 'on' or 'off', got 'maybe'"):
        settings_from_args(build_parser().parse_args([]))
    with pytest.raises(SystemExit):  # argparse: invalid choice
        build_parser().parse_args(["--tiering", "maybe"])
