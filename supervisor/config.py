"""Settings: environment variables (the Go original's names), optionally a JSON/TOML file.

Precedence: environment > config file (KAKOCLAW_CONFIG) > defaults.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "KAKOCLAW_"


class ConfigError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """'24h', '90m', '30s', '1.5', '2h30m' -> seconds."""
    text = text.strip().lower()
    if not text:
        raise ConfigError("empty duration")
    try:
        return float(text)
    except ValueError:
        pass
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, num = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not num:
            raise ConfigError(f"bad duration {text!r}")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise ConfigError(f"bad duration {text!r}: number without unit")
    return total


def parse_size(text: str) -> int:
    """'512M', '1G', '64k', '1048576' -> bytes."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3}
    try:
        if text and text[-1] in mult:
            return int(float(text[:-1]) * mult[text[-1]])
        return int(text)
    except ValueError:
        raise ConfigError(f"bad size {text!r}") from None


@dataclass
class ProviderConfig:
    name: str
    api_key: str = ""
    api_base: str = ""


@dataclass
class Settings:
    # web
    web_host: str = "127.0.0.1"
    web_port: int = 18880
    web_username: str = "admin"
    web_password: str = ""  # empty: generate one on first start and print it once
    web_jwt_expiry: float = 24 * 3600.0
    storage_path: str = "~/.kakoclaw"
    log_level: str = "info"
    log_format: str = "text"  # text | json
    # agent
    agents_defaults_provider: str = "offline"
    agents_defaults_model: str = ""
    agents_defaults_max_tokens: int = 4096
    agents_defaults_temperature: float = 0.7
    agents_defaults_max_tool_rounds: int = 20
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    # engine
    containment: str = "auto"  # auto | cgroup | pgroup
    cancel_grace: float = 3.0
    max_concurrent: int = 16
    max_concurrent_per_user: int = 4
    max_queue: int = 256
    runner_user: str = "nobody"
    runner_wall_time: float = 600.0
    runner_memory: int = 1024**3
    runner_max_processes: int = 256
    runner_output_bytes: int = 64 * 1024**2
    runner_line_limit: int = 1024**2
    runner_pool_size: int = 2
    runner_nice: int = 10  # runners yield the CPU to the supervisor, which must stay able to cancel
    runner_args: str = "-m agent_runner"  # what the interpreter runs (a replacement runner for tests)
    exec_timeout: float = 120.0
    # event log
    event_backend: str = "memory"  # the in-process event log
    event_log_max_events: int = 10_000
    event_log_max_bytes: int = 8 * 1024**2
    event_log_keep_finished: float = 300.0
    subscriber_queue: int = 10_000  # events a subscriber may lag before it is cut off

    @property
    def data_dir(self) -> Path:
        # Absolute: runners change into their workspace, so a relative path would move.
        return Path(os.path.expanduser(self.storage_path)).resolve()

    def provider(self, name: str) -> ProviderConfig:
        return self.providers.get(name) or ProviderConfig(name=name)


_DURATIONS = {"web_jwt_expiry", "cancel_grace", "runner_wall_time", "exec_timeout", "event_log_keep_finished"}
_SIZES = {"runner_memory", "runner_output_bytes", "runner_line_limit", "event_log_max_bytes"}


def _coerce(name: str, kind: type, raw: object) -> object:
    if name in _DURATIONS:
        return parse_duration(str(raw)) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
    if name in _SIZES:
        return parse_size(str(raw))
    try:
        if kind is bool:
            return str(raw).lower() in ("1", "true", "yes", "on")
        if kind is int:
            return int(raw)  # type: ignore[arg-type]
        if kind is float:
            return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: {raw!r} is not a valid {kind.__name__}") from None
    return str(raw)


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from None


def load_settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    kinds = {f.name: f.type for f in fields(Settings) if f.name != "providers"}
    type_of = {"str": str, "int": int, "float": float, "bool": bool}
    providers: dict[str, ProviderConfig] = {}

    if cfg := env.get(PREFIX + "CONFIG"):
        raw = _read_file(Path(cfg))
        for key, val in raw.items():
            if key == "providers" and isinstance(val, dict):
                for pname, pval in val.items():
                    providers[pname] = ProviderConfig(name=pname, **{k: str(v) for k, v in pval.items()})
            elif key in kinds:
                values[key] = _coerce(key, type_of[str(kinds[key])], val)
            else:
                raise ConfigError(f"config file: unknown setting {key!r}")

    for name, kind in kinds.items():
        var = PREFIX + name.upper()
        if var in env:
            values[name] = _coerce(name, type_of[str(kind)], env[var])

    for var, val in env.items():
        if var.startswith(PREFIX + "PROVIDERS_"):
            rest = var[len(PREFIX + "PROVIDERS_") :]
            for suffix, attr in (("_API_KEY", "api_key"), ("_API_BASE", "api_base")):
                if rest.endswith(suffix) and rest[: -len(suffix)]:
                    pname = rest[: -len(suffix)].lower()
                    prov = providers.setdefault(pname, ProviderConfig(name=pname))
                    setattr(prov, attr, val)

    values.update(overrides)
    settings = Settings(**values, providers=providers)  # type: ignore[arg-type]
    if settings.containment not in ("auto", "cgroup", "pgroup"):
        raise ConfigError("KAKOCLAW_CONTAINMENT must be auto, cgroup or pgroup")
    if settings.event_backend != "memory":
        raise ConfigError("KAKOCLAW_EVENT_BACKEND: only 'memory' is available in this version")
    return settings
