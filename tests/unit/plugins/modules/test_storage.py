# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""msr.replicas.storage end to end, except MKE: the real MSR client over HTTPS against a server that
answers like MSR (recorded from msr-lab, see test_storage_msr.py); the replica comes from a view built by
the real build_view."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.msr.replicas.plugins.module_utils._cluster import build_view
from ansible_collections.msr.replicas.plugins.modules import storage
from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_storage_msr import (
    RECORDED_REPOSITORIES,
    RECORDED_S3,
    serve,
)

MKE_PASSWORD = "pw"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AZURE_KEY = "bXNyLWxhYi1henVyZS1rZXktZm9yLXRlc3Rz"


def warnings(result):
    # ansible-core 2.19 returns warnings as WarningSummary objects; older versions as strings.
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def view_for(url, healthy=3):
    ids = ["55f08c6d99d0", "db1ac7f3c922", "737a4a125beb"]
    nodes = [{"id": "n%d" % i, "name": "worker%d" % i, "role": "worker", "availability": "active", "state": "ready",
              "message": "", "address": "127.0.0.1", "labels": {}, "leader": False, "reachability": None}
             for i in (1, 2, 3)]
    containers = [{"id": rid, "node": "worker%d" % (i + 1), "version": "2.9.16", "container_state": "running"}
                  for i, rid in enumerate(ids)]
    urls = dict((rid, url) for rid in ids)
    pings = dict((rid, {"status": 200 if i < healthy else 503, "healthy": i < healthy, "error": ""})
                 for i, rid in enumerate(ids))
    cs = {"replica_health": dict((rid, "OK") for rid in ids), "current_issues": [], "replica_timestamp": {}}
    return build_view(nodes, containers, urls, pings, cs, None, observer=url)


@pytest.fixture
def msr_api(pki):
    with serve(pki) as api:
        yield api


@pytest.fixture
def run(msr_api, pki, monkeypatch, capsys):
    state = {"healthy": 3}

    def fake_observe(mke, msr_factory, msr_url=None):
        assert mke.url == "https://mke.example.com"
        return view_for(msr_api.url, state["healthy"])

    monkeypatch.setattr(storage, "observe", fake_observe)

    def _run(check=False, diff=True, **args):
        params = {"mke_url": "https://mke.example.com", "mke_password": MKE_PASSWORD, "mke_ca": pki["ca"],
                  "msr_ca": pki["ca"], "api_retries": 1, "_ansible_check_mode": check, "_ansible_diff": diff}
        params.update(args)
        with patch_module_args(params):
            with pytest.raises(SystemExit):
                storage.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        result["_raw"] = out
        return result
    _run.state = state
    return _run


def test_equal_settings_change_nothing_twice(run, msr_api):
    for attempt in range(2):
        r = run(driver="s3", options={"bucket": "msr-lab", "region": "us-east-1", "secure": "true"},
                delete_enabled=False, readonly=False)
        assert r.get("failed") is not True, (attempt, r)
        assert r["changed"] is False and r["changes"] == []
        assert r["storage"] == RECORDED_S3["storage"] and r["driver"] == "s3"
        assert r["diff"]["before"] == r["diff"]["after"] == RECORDED_S3["storage"]
        assert r["replica"] == msr_api.url
    assert msr_api.puts() == []


def test_check_mode_predicts_the_real_run(run, msr_api):
    args = dict(options={"bucket": "images", "regionendpoint": "https://s3.example.com"}, delete_enabled=True)
    predicted = run(check=True, **args)
    assert predicted["changed"] is True and msr_api.puts() == []
    assert msr_api.storage == RECORDED_S3["storage"]
    real = run(**args)
    assert len(msr_api.puts()) == 1
    for key in ("changed", "changes", "storage", "driver", "diff", "repositories", "unverified_secrets"):
        assert predicted[key] == real[key], key
    assert real["changes"] == ["delete.enabled", "s3.bucket", "s3.regionendpoint"]
    assert msr_api.storage["s3"]["bucket"] == "images" and msr_api.storage["delete"] == {"enabled": True}
    again = run(**args)
    assert again["changed"] is False and len(msr_api.puts()) == 1


def test_secret_is_sent_compared_and_never_shown(run, msr_api):
    args = dict(options={"accesskey": "AKIAIOSFODNN7EXAMPLE"}, secret_options={"secretkey": SECRET})
    r = run(**args)
    assert r["changed"] is True and r["changes"] == ["s3.accesskey", "s3.secretkey"]
    assert msr_api.puts()[0]["storage"]["s3"]["secretkey"] == SECRET       # really sent
    assert r["storage"]["s3"]["secretkey"] == "********"
    assert r["diff"]["after"]["s3"]["secretkey"] == "******** (changed)"
    assert SECRET not in r["_raw"]
    # MSR returns it, so it is compared: the same secret is no change, another one is.
    assert run(**args)["changed"] is False
    other = run(options=args["options"], secret_options={"secretkey": SECRET[::-1]})
    assert other["changed"] is True and other["changes"] == ["s3.secretkey"]
    assert SECRET[::-1] not in other["_raw"] and SECRET not in other["_raw"]


def test_secrets_read_from_msr_are_masked_even_when_not_given(run, msr_api):
    msr_api.storage = {"azure": {"accountname": "msrlab", "accountkey": AZURE_KEY, "container": "msr-lab",
                                 "realm": "core.windows.net"}}
    r = run(options={"container": "images"})
    assert r["changed"] is True and r["storage"]["azure"]["accountkey"] == "********"
    assert msr_api.puts()[0]["storage"]["azure"]["accountkey"] == AZURE_KEY   # kept as MSR had it
    assert AZURE_KEY not in r["_raw"]


def test_secrets_read_from_msr_stay_out_of_error_messages(run, msr_api, monkeypatch):
    msr_api.storage = {"azure": {"accountname": "msrlab", "accountkey": AZURE_KEY, "container": "msr-lab"}}
    # An MSR that quotes the settings in its refusal: the module must still not show the key.
    monkeypatch.setattr(msr_api, "put", lambda body: (400, {"errors": [{"code": "INVALID_SETTINGS", "message": (
        "cannot use %s" % json.dumps(body["storage"]["azure"]))}]}))
    r = run(options={"container": "images"})
    assert r["failed"] is True and r["msg"].startswith("MSR refused the storage settings: HTTP 400 INVALID_SETTINGS")
    assert "********" in r["msg"] and AZURE_KEY not in r["_raw"]


def test_bad_access_key_is_refused_with_msr_reason(run, msr_api):
    r = run(options={"accesskey": "BADKEY0000"}, secret_options={"secretkey": SECRET})
    assert r["failed"] is True
    assert r["msg"] == ("MSR refused the storage settings: HTTP 400 INVALID_SETTINGS: InvalidAccessKeyId: The AWS "
                        "Access Key Id you provided does not exist in our records. status code: 403, request id: "
                        "B06715D8468933CF")
    assert SECRET not in r["_raw"]
    assert msr_api.storage == RECORDED_S3["storage"]


def test_secret_in_plain_options_is_refused_and_masked(run, msr_api):
    r = run(driver="s3", options={"bucket": "b", "secretkey": SECRET})
    assert r["failed"] is True
    assert r["msg"] == "options.secretkey is a secret: give it in secret_options, which is never logged or shown"
    assert SECRET not in r["_raw"]
    assert msr_api.requests == []


def test_driver_switch_with_images_needs_force(run, msr_api):
    msr_api.repositories = RECORDED_REPOSITORIES["repositories"]
    message = ("refusing to switch the storage driver from s3 to filesystem: the cluster holds images (repository "
               "admin/app) that stay in the s3 storage, where MSR no longer finds them; move them first, or set "
               "force: true")
    for check in (True, False):
        r = run(check=check, driver="filesystem")
        assert r["failed"] is True and r["msg"] == message and r["repositories"] == ["admin/app"]
    assert msr_api.puts() == []
    forced = run(driver="filesystem", force=True)
    assert forced["changed"] is True and forced["driver"] == "filesystem"
    assert forced["storage"] == {"filesystem": {"rootdirectory": "/storage"}}
    assert any("force is true" in w for w in warnings(forced))
    assert ("the filesystem storage driver with 3 replicas: images pushed to one replica are not visible on the "
            "others unless their volume is shared (NFS)") in warnings(forced)
    assert msr_api.storage == {"filesystem": {"rootdirectory": "/storage"}}
    # Without repositories no force is needed.
    msr_api.repositories = []
    back = run(driver="s3", options={"bucket": "msr-lab", "region": "us-east-1"})
    assert back["changed"] is True and back["repositories"] == []


def test_no_quorum_is_refused_before_any_request(run, msr_api):
    run.state["healthy"] = 1
    for check in (True, False):
        r = run(check=check, options={"bucket": "x"})
        assert r["failed"] is True
        assert r["msg"].startswith("cannot read or change the storage settings: only 1 of 3 MSR replicas are healthy")
    assert msr_api.requests == []


def test_database_errors_are_explained(run, msr_api):
    msr_api.quorum = False       # MKE's view still looks fine, the replica cannot reach a majority
    r = run(options={"bucket": "x"})
    assert r["failed"] is True
    assert "HTTP 500" in r["msg"] and "Cannot perform read" in r["msg"]
    assert r["msg"].endswith("(MSR could not use its database: the replica asked is not with a healthy majority of "
                             "replicas; restore quorum first)")


def test_redacted_secrets(run, msr_api):
    msr_api.storage["s3"]["secretkey"] = SECRET
    msr_api.redact = True
    always = run(secret_options={"secretkey": SECRET})
    assert always["changed"] is True and always["unverified_secrets"] == ["secretkey"]
    assert run(secret_options={"secretkey": SECRET})["changed"] is True       # cannot be proven equal
    quiet = run(secret_options={"secretkey": SECRET}, update_secrets="on_change")
    assert quiet["changed"] is False and quiet["unverified_secrets"] == ["secretkey"]
    puts = len(msr_api.puts())
    refused = run(options={"bucket": "other"})
    assert refused["failed"] is True and "without secretkey" in refused["msg"]
    assert len(msr_api.puts()) == puts and msr_api.storage["s3"]["secretkey"] == SECRET


def test_a_read_back_that_differs_fails(run, msr_api, monkeypatch):
    real_put = msr_api.put

    def lossy_put(body):
        status, doc = real_put(body)
        msr_api.storage["s3"].pop("regionendpoint", None)
        msr_api.storage["s3"]["bucket"] = "msr-lab"
        return status, doc
    monkeypatch.setattr(msr_api, "put", lossy_put)
    r = run(options={"bucket": "images"})
    assert r["failed"] is True
    assert r["msg"] == "MSR accepted the storage settings but reads back other values for: s3.bucket"


def test_filesystem_root_is_forced_with_a_warning(run, msr_api):
    r = run(driver="filesystem", options={"rootdirectory": "/data"})
    assert r["changed"] is True and r["storage"] == {"filesystem": {"rootdirectory": "/storage"}}
    assert warnings(r)[0] == ("MSR keeps filesystem storage in /storage (where its volume is mounted): rootdirectory "
                              "/data is ignored")
    assert run(driver="filesystem", options={"rootdirectory": "/data"})["changed"] is False
