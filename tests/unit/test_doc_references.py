# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every docs/ page that a message, a playbook, a role or bin/ points a user at exists in the collection.

The quorum-loss refusal, the emergency_repair playbook and msr-reconcile name docsite pages by path; a page
renamed or deleted would leave users with a dead pointer at the worst moment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("plugins", "playbooks", "roles", "bin", "changelogs/fragments")
REFERENCE = re.compile(r"\bdocs/[\w./-]+?\.(?:rst|md)\b")


def references():
    found = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                for ref in REFERENCE.findall(path.read_text(errors="replace")):
                    found.setdefault(ref, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_quorum_loss_hint_points_at_the_runbook_page():
    from ansible_collections.msr.replicas.plugins.module_utils._topology import EMERGENCY_REPAIR_HINT

    assert REFERENCE.findall(EMERGENCY_REPAIR_HINT) == ["docs/docsite/rst/playbook_emergency_repair.rst"]


def test_every_referenced_docs_page_exists():
    found = references()
    assert "docs/docsite/rst/guide_scheduling.rst" in found   # msr-reconcile's docstring and reconcile.yml
    missing = {ref: where for ref, where in found.items() if not (ROOT / ref).is_file()}
    assert not missing, "pages referenced but missing: %s" % missing


MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_of_the_readmes_resolves():
    if not (ROOT / "tests" / "lab").is_dir():
        pytest.skip("the READMEs link into the checkout (tests/lab, tests/integration), which a tarball leaves out")
    readmes = [ROOT / "README.md", *sorted(ROOT.glob("roles/*/README.md")), ROOT / "tests/lab/README.md"]
    checked, broken = 0, []
    for readme in readmes:
        for target in MARKDOWN_LINK.findall(readme.read_text()):
            if "://" in target:
                continue
            checked += 1
            if not (readme.parent / target).exists():
                broken.append("%s -> %s" % (readme.relative_to(ROOT), target))
    assert checked > 20 and not broken, broken
