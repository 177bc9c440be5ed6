"""MKE's configuration file as `GET|PUT /api/ucp/config-toml` serves it (msr2.md §3.3).

The lab keeps the sections MSR automation meets; `[scheduling_configuration] enable_admin_ucp_scheduling`
decides whether MKE lets an admin create containers where MSR's bootstrapper needs them (scheduler.py).
A PUT replaces the configuration: keys it leaves out fall back to their defaults, as MKE does [I].
"""
from __future__ import annotations

import copy
import tomllib

DEFAULTS = {
    "auth": {
        "default_new_user_role": "restrictedcontrol",
        "backend": "managed",
        "samlEnabled": False,
        "managedPasswordDisabled": False,
        "managedPasswordFallbackUser": "",
        "sessions": {"lifetime_minutes": 60, "renewal_threshold_minutes": 20, "per_user_limit": 10,
                     "store_token_per_session": False},
    },
    "scheduling_configuration": {"enable_admin_ucp_scheduling": False, "default_node_orchestrator": "swarm"},
    "tracking_configuration": {"disable_usageinfo": True, "disable_tracking": True},
    "trust_configuration": {"require_content_trust": False},
    "log_configuration": {"level": "INFO"},
    "cluster_config": {"controller_port": 443, "kube_apiserver_port": 6443, "swarm_port": 2376,
                       "swarm_strategy": "spread", "dns": [], "dns_opt": [], "dns_search": [],
                       "profiling_enabled": False},
}
# Keys whose values MKE checks by type; a PUT with another type is refused.
TYPED = {("scheduling_configuration", "enable_admin_ucp_scheduling"): bool,
         ("scheduling_configuration", "default_node_orchestrator"): str,
         ("auth", "sessions", "lifetime_minutes"): int}


class ConfigError(ValueError):
    pass


def current(lab) -> dict:
    """The lab's MKE configuration, made on first use from `up --admin-scheduling` (lab.config)."""
    with lab.lock:
        if lab.mke_config is None:
            doc = copy.deepcopy(DEFAULTS)
            doc["scheduling_configuration"]["enable_admin_ucp_scheduling"] = bool(
                lab.config.get("admin_scheduling", True))
            lab.mke_config = doc
        return lab.mke_config


def admin_scheduling(lab) -> bool:
    return bool(current(lab).get("scheduling_configuration", {}).get("enable_admin_ucp_scheduling"))


def set_admin_scheduling(lab, on: bool) -> None:
    with lab.lock:
        current(lab)["scheduling_configuration"]["enable_admin_ucp_scheduling"] = bool(on)


def _merge(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse(text: str) -> dict:
    """The configuration a PUT body describes (defaults for what it leaves out); ConfigError if invalid."""
    try:
        given = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"unable to parse the configuration as TOML: {e}") from None
    doc = _merge(DEFAULTS, given)
    for path, kind in TYPED.items():
        value = doc
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and type(value) is not kind:
            raise ConfigError(f"invalid value for {'.'.join(path)}: expected a {kind.__name__}, got {value!r}")
    return doc


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    text = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render(doc: dict, prefix: str = "") -> str:
    """TOML text: scalars of a table first, then its sub-tables, indented as MKE's export is."""
    lines = []
    depth = prefix.count(".") + 1 if prefix else 0
    pad = "  " * depth
    if prefix:
        lines.append(f"{'  ' * (depth - 1)}[{prefix}]")
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.append(f"{pad}{key} = {_value(value)}")
    text = "\n".join(lines)
    for key, value in doc.items():
        if isinstance(value, dict):
            text += ("\n\n" if text else "") + render(value, f"{prefix}.{key}" if prefix else key).rstrip("\n")
    return text + "\n"
