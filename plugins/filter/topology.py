# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Jinja2 filters over the private _topology planner; documented in the sibling <name>.yml files."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.module_utils import _plan, _topology


def _call(func, *args, **kwargs):
    # Bad input must fail the task with a readable message, not a traceback.
    try:
        return func(*args, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError("%s: %s" % (func.__name__, exc)) from exc


def msr_majority(n):
    """Replicas that must stay healthy for a cluster of ``n`` replicas."""
    return _call(_topology.majority, _as_int(n))


def msr_failures_tolerated(n):
    """Replica failures a cluster of ``n`` replicas survives."""
    return _call(_topology.failures_tolerated, _as_int(n))


def msr_plan(desired, observed, policy=None, eligible=None, lb_pool=None):
    """Ordered replica actions from the desired node names and the observed replicas."""
    # A whole cluster_info result brings node states and MSR's critical issues into the gates.
    observed = dict(observed) if isinstance(observed, dict) else _as_list(observed, "observed")
    return _call(_plan.plan, _as_list(desired, "desired"), observed,
                 policy=policy, eligible=_as_list(eligible, "eligible"), lb_pool=_as_list(lb_pool, "lb_pool"))


def _as_int(value):
    # Inventory values often arrive as strings ("3"); a bool is never a count.
    if isinstance(value, bool):
        raise AnsibleFilterError("expected a replica count, got a boolean")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("expected a replica count, got %r" % (value,)) from exc


def _as_list(value, name):
    # Templated lists can be tuples or other sequences; a plain string is a mistake, not a list.
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)):
        raise AnsibleFilterError("msr_plan: %s must be a list, got %s" % (name, type(value).__name__))
    return list(value)


class FilterModule(object):
    def filters(self):
        return {
            "msr_majority": msr_majority,
            "msr_failures_tolerated": msr_failures_tolerated,
            "msr_plan": msr_plan,
        }
