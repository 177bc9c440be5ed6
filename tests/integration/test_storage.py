# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""msr.replicas.storage against the lab: the lab seeds s3 storage (bucket msr-lab, region us-east-1).

What the module did is checked through the lab's own MSR API, read here directly over HTTPS with MSR's
CA (not through the module).
"""

from __future__ import annotations

import json
import re
import secrets

import pytest
from reliability import msr_api as msr

pytestmark = pytest.mark.timeout(240)

PATH = "/api/v0/admin/settings/registry/simple"
SEEDED = {"s3": {"bucket": "msr-lab", "region": "us-east-1", "regionendpoint": "", "rootdirectory": "", "secure": True}}


def stored(lab):
    status, doc = msr(lab, "GET", PATH)
    assert status == 200, doc
    return doc["storage"]


def task(name, **params):
    return {"name": name, "msr.replicas.storage": params}


def warnings(result):
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def test_equal_settings_change_nothing_twice_also_in_check_mode(lab):
    lab.fresh(replicas=1)
    assert stored(lab) == SEEDED
    same = dict(driver="s3", options={"bucket": "msr-lab", "region": "us-east-1", "secure": "true"},
                delete_enabled=False, readonly=False)
    play = lab.play([task("same once", **same), task("same twice", **same)])
    for check in (False, True):
        run = lab.run(play, check=check, touches=False)
        assert run.rc == 0, run.output
        for name in ("same once", "same twice"):
            r = run.result(name)
            assert r["changed"] is False and r["changes"] == [], r
            assert r["storage"] == SEEDED and r["driver"] == "s3"
            assert r["diff"]["before"] == r["diff"]["after"] == SEEDED
            assert r["replica"] == "https://%s" % lab.hosts["worker1"]
    assert stored(lab) == SEEDED


def test_check_mode_predicts_then_the_change_is_read_back(lab):
    lab.fresh(replicas=1)
    change = dict(options={"bucket": "images", "regionendpoint": "https://s3.example.com"}, delete_enabled=True)
    play = lab.play([task("change", **change)])
    predicted = lab.run(play, check=True)
    assert predicted.rc == 0, predicted.output
    p = predicted.result("change")
    assert p["changed"] is True and p["changes"] == ["delete.enabled", "s3.bucket", "s3.regionendpoint"]
    assert stored(lab) == SEEDED                                  # check mode changed nothing

    real = lab.run(play)
    assert real.rc == 0, real.output
    r = real.result("change")
    assert r["changed"] is True
    expected = {"delete": {"enabled": True},
                "s3": dict(SEEDED["s3"], bucket="images", regionendpoint="https://s3.example.com")}
    assert stored(lab) == expected == r["storage"]               # re-read, as MSR stores it
    for key in ("changes", "storage", "driver", "diff"):
        assert p[key] == r[key], key                             # the prediction was exact
    assert r["diff"]["before"] == SEEDED and r["diff"]["after"] == expected

    again = lab.run(play)
    assert again.rc == 0 and again.result("change")["changed"] is False, again.output


def test_secret_never_in_output_at_vvv_nor_in_results(lab):
    lab.fresh(replicas=1)
    secret = "msr-int-secret-" + secrets.token_hex(12)
    good = dict(options={"accesskey": "AKIAIOSFODNN7EXAMPLE"}, secret_options={"secretkey": secret})
    bad = dict(options={"accesskey": "BADKEY0000000000"}, secret_options={"secretkey": secret + "-bad"})
    bad_task = task("bad key", **bad)
    bad_task["ignore_errors"] = True
    play = lab.play([task("set the key", **good), task("same key", **good), bad_task])
    run = lab.run(play, verbosity=3)
    assert run.rc == 0, run.output

    set_key, same_key, refused = (run.result(n) for n in ("set the key", "same key", "bad key"))
    assert run.task("bad key")["status"] == "failed"
    assert set_key["changed"] is True and set_key["changes"] == ["s3.accesskey", "s3.secretkey"]
    assert set_key["storage"]["s3"]["secretkey"] == "********"
    assert set_key["diff"]["after"]["s3"]["secretkey"] == "******** (changed)"
    assert same_key["changed"] is False                           # MSR returns the key: compared
    # The refusal of MSR itself (it test-writes the bucket), with its message.
    assert re.fullmatch(r"MSR refused the storage settings: HTTP 400 INVALID_SETTINGS: InvalidAccessKeyId: The AWS "
                        r"Access Key Id you provided does not exist in our records\. status code: 403, request id: "
                        r"[0-9A-F]{16}", refused["msg"]), refused["msg"]

    s = stored(lab)
    assert s["s3"]["secretkey"] == secret and s["s3"]["accesskey"] == "AKIAIOSFODNN7EXAMPLE"   # really sent
    # The audit: really verbose, the no_log option shown masked, the secrets nowhere.
    assert "-vvv" in run.args and "ESTABLISH SSH CONNECTION" in run.stdout
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.stdout
    for value in (secret, secret + "-bad"):
        assert value not in run.stdout and value not in run.stderr
        for rec in run.records:
            assert value not in json.dumps(rec), rec["task"]


def test_driver_switch_with_images_needs_force(lab):
    lab.fresh(replicas=1)
    status, repo = msr(lab, "POST", "/api/v0/repositories/admin", {"name": "app", "visibility": "private"})
    assert status == 201, repo
    lab.touched()
    switch = task("to filesystem", driver="filesystem")
    message = ("refusing to switch the storage driver from s3 to filesystem: the cluster holds images (repository "
               "admin/app) that stay in the s3 storage, where MSR no longer finds them; move them first, or set "
               "force: true")
    for check in (True, False):
        run = lab.run(lab.play([switch]), check=check)
        assert run.rc != 0, run.output
        assert run.task("to filesystem")["status"] == "failed"
        r = run.result("to filesystem")
        assert r["msg"] == message and r["repositories"] == ["admin/app"]
    assert stored(lab) == SEEDED

    forced = task("to filesystem", driver="filesystem", force=True)
    run = lab.run(lab.play([forced, dict(forced, name="again")]))
    assert run.rc == 0, run.output
    r = run.result("to filesystem")
    assert r["changed"] is True and r["driver"] == "filesystem" and r["changes"][0] == "driver"
    assert r["storage"] == {"filesystem": {"rootdirectory": "/storage"}} == stored(lab)
    assert any("force is true" in w for w in warnings(r)), r
    assert lab.status()["cluster"]["storage"] == "filesystem"
    assert run.result("again")["changed"] is False


def test_no_quorum_is_refused_in_check_mode_too(lab):
    lab.fresh(replicas=3)
    lab.fault("quorum-loss")
    play = lab.play([task("change", options={"bucket": "images"})])
    for check in (True, False):
        run = lab.run(play, check=check)
        assert run.rc != 0, run.output
        assert run.task("change")["status"] == "failed"
        r = run.result("change")
        assert r["msg"] == ("cannot read or change the storage settings: only 0 of 3 MSR replicas are healthy and 2 "
                            "are needed for quorum; without a healthy majority MSR can neither read nor write its "
                            "settings (restore quorum first, see the emergency-repair runbook)"), r["msg"]
