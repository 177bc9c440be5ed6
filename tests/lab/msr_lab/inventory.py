"""The Ansible inventory of a lab, with the groups and variable names of DESIGN.md §3."""
from __future__ import annotations

import yaml

from msr_lab.common.labfiles import LabFiles
from msr_lab.nodes.initfiles import NODE_PYTHON


class _Literal(str):
    pass


def _literal(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


yaml.SafeDumper.add_representer(_Literal, _literal)


def msr_trust(files: LabFiles, cluster: dict | None) -> dict:
    """msr_ca, the organisation CA and certificate (msr_dtr_*) and msr_external_url.

    msr_ca is the CA of the current cluster when the daemon answers (`cluster`, its status), else the
    one of the cluster `up` seeded; empty when MSR is not installed. The msr_dtr_* material is valid for
    every worker and LB (names and addresses), for an install from automation with --dtr-ca/cert/key.
    """
    pki = files.pki_dir
    if cluster is not None:
        ca = cluster.get("msr_ca") or ""
    else:
        seeded = pki / "msr-ca.pem"
        ca = seeded.read_text() if seeded.exists() else ""
    out = {"msr_ca": _Literal(ca) if ca else ""}
    for var, name in (("msr_dtr_ca", "org-ca.pem"), ("msr_dtr_cert", "org-server.pem"),
                      ("msr_dtr_key", "org-server.key")):
        if (pki / name).exists():
            out[var] = _Literal((pki / name).read_text())
    url = files.load()["config"].get("seed_external_url")
    if url:
        out["msr_external_url"] = url
    return out


def build(files: LabFiles, replica_nodes: list[str] | None = None, cluster: dict | None = None) -> dict:
    desc = files.load()
    cfg = desc["config"]
    nodes = desc["nodes"]

    def group(role):
        # virtual MKE nodes (up --mke-nodes) have no sshd: they are no host of the inventory
        return {name: {"ansible_host": info["addr"]} for name, info in nodes.items()
                if info["role"] == role and not info.get("virtual")}

    msr = replica_nodes if replica_nodes is not None else cfg.get("seed_replicas", [])
    ssh = files.ssh_dir
    managers = group("manager")
    return {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(ssh / "id_ed25519"),
                # the lab's own known_hosts: node host keys are new on every `up`
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={ssh / 'known_hosts'} -o StrictHostKeyChecking=yes",
                # every node sees the lab's venv there (read-only): its docker SDK stands in for
                # python3-docker on a real bootstrap host
                "ansible_python_interpreter": f"{NODE_PYTHON}/bin/python",
                "msr_version": cfg["msr_version"],
                "msr_image": cfg["msr_image"],
                "msr_mke_url": cfg["mke_url"],
                "msr_mke_username": cfg["mke_username"],
                "msr_mke_password": cfg["mke_password"],
                "msr_mke_ca": _Literal(files.pki_dir.joinpath("ca.pem").read_text()),
                "msr_bootstrap_host": next(iter(managers)),
                **msr_trust(files, cluster),
            },
            "children": {
                "mke_managers": {"hosts": managers},
                "mke_workers": {"hosts": group("worker")},
                "msr": {"hosts": {name: {"ansible_host": nodes[name]["addr"]} for name in msr}},
                "msr_lb": {"hosts": {name: {"ansible_host": info["addr"], "msr_lb_provider": info.get("lb_kind", "haproxy")}
                                     for name, info in nodes.items() if info["role"] == "lb"}},
            },
        }
    }


def render(files: LabFiles, replica_nodes: list[str] | None = None, cluster: dict | None = None) -> str:
    header = ("# msr-lab inventory: the lab's nodes, MKE admin credentials and CA, MSR's CA.\n"
              "# It holds the lab's MKE password and the msr_dtr_key in clear: they are throwaway lab secrets.\n")
    return header + yaml.safe_dump(build(files, replica_nodes, cluster), sort_keys=False, default_flow_style=False)
