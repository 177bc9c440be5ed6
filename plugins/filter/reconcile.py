# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Jinja2 filters over the private _reconcile module; documented in the sibling <name>.yml files."""

from __future__ import annotations

import time

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.msr.replicas.plugins.module_utils import _reconcile


def _plain(value):
    # Templated values arrive as Ansible's lazy containers; the pure code wants plain ones.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def msr_reconcile(desired, cluster, lb_pools=None, msr_version=None, policy=None):
    """The drift report from the desired node names, cluster_info and the observed LB pools."""
    if isinstance(desired, (str, bytes, dict)) or desired is None:
        raise AnsibleFilterError("msr_reconcile: the desired set must be a list of node names, got %s"
                                 % type(desired).__name__)
    if lb_pools is not None and not isinstance(lb_pools, dict):
        raise AnsibleFilterError("msr_reconcile: lb_pools must be a dict of LB host to pool, got %s"
                                 % type(lb_pools).__name__)
    try:
        return _reconcile.reconcile(_plain(desired), _plain(cluster), _plain(lb_pools),
                                    None if msr_version in (None, "") else str(msr_version), _plain(policy))
    except ValueError as exc:
        raise AnsibleFilterError("msr_reconcile: %s" % exc) from exc


def msr_table(report):
    """The report as fixed-width text lines."""
    if not isinstance(report, dict):
        raise AnsibleFilterError("msr_table: expected a msr_reconcile report (a dict), got %s" % type(report).__name__)
    return _reconcile.table(_plain(report))


def msr_reconcile_status(before, after=None, failed=False):
    """in_sync, converged, drift or error."""
    return _reconcile.status(_plain(before) or None, _plain(after) or None, bool(failed))


def msr_reconcile_report(before, after=None, failed=False, remediated=False, error="", sizing=None, started_at=None,
                         started=None):
    """The run's report (the drift report with the run's outcome); ``started``: the run's start as a Unix time."""
    for name, value in (("before", before), ("after", after)):
        if value is not None and not isinstance(value, dict):
            raise AnsibleFilterError("msr_reconcile_report: %s must be a msr_reconcile report (a dict), got %s"
                                     % (name, type(value).__name__))
    try:
        duration = None if started in (None, "") else round(time.time() - float(started), 1)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("msr_reconcile_report: started must be a Unix time, got %r" % (started,)) from exc
    return _reconcile.run_report(_plain(before), _plain(after), boolean(failed, strict=False),
                                 boolean(remediated, strict=False), error or "",
                                 _plain(sizing), started_at, duration)


def msr_reconcile_outcome(report):
    """What a scheduler or a workflow acts on: status, in_sync, remediated, drift, drift_found and error."""
    if not isinstance(report, dict):
        raise AnsibleFilterError("msr_reconcile_outcome: expected a msr_reconcile_report (a dict), got %s"
                                 % type(report).__name__)
    return _reconcile.outcome(_plain(report))


def msr_reconcile_problems(given):
    """What is wrong with a reconcile run's variables (a dict of them), one message each."""
    if not isinstance(given, dict):
        raise AnsibleFilterError("msr_reconcile_problems: expected a dict of the run's variables, got %s"
                                 % type(given).__name__)
    return _reconcile.input_problems(_plain(given))


class FilterModule(object):
    def filters(self):
        return {"msr_reconcile": msr_reconcile, "msr_table": msr_table, "msr_reconcile_status": msr_reconcile_status,
                "msr_reconcile_report": msr_reconcile_report, "msr_reconcile_outcome": msr_reconcile_outcome,
                "msr_reconcile_problems": msr_reconcile_problems}
