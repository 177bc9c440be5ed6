# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""report_file's writing: the text, mode 0600, atomic replacement, and a missing directory named."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.msr.replicas.plugins.action import report_file


def test_render_keeps_strings_and_dumps_the_rest():
    assert report_file.render('{"a": 1}\n') == '{"a": 1}\n'
    assert report_file.render("x") == "x\n"
    assert json.loads(report_file.render({"b": [1], "a": None})) == {"a": None, "b": [1]}
    assert report_file.render({"b": 1, "a": 2}).index('"a"') < report_file.render({"b": 1, "a": 2}).index('"b"')


def test_write_replaces_atomically_owner_only(tmp_path):
    dest = tmp_path / "report.json"
    dest.write_text("old")
    dest.chmod(0o644)
    report_file.write(str(dest), "new\n")
    assert dest.read_text() == "new\n" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["report.json"]          # no temporary file left


def test_write_names_a_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="the directory .*/nope of dest does not exist on the controller"):
        report_file.write(str(tmp_path / "nope" / "r.json"), "x")
