# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The storage decisions (_storage.plan and friends) on storage sections recorded from msr-lab."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _storage
from ansible_collections.msr.replicas.plugins.module_utils._cluster import build_view
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_storage_msr import RECORDED_S3

S3 = RECORDED_S3["storage"]
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def s3(**params):
    doc = copy.deepcopy(S3)
    doc["s3"].update(params)
    return doc


def test_equal_settings_in_other_spellings_are_no_change():
    # True/"True", 5/"5", "" and absent, delete/readonly unset and false: all the same to MSR.
    current = s3(chunksize=5242880)
    p = _storage.plan(current, driver="s3", options={"bucket": "msr-lab", "secure": "True", "chunksize": "5242880",
                                                     "regionendpoint": None, "rootdirectory": ""},
                      delete_enabled=False, readonly=False)
    assert (p["changed"], p["changes"], p["switch_from"]) == (False, [], None)
    # Equal values keep MSR's spelling in the body (so a diff never shows them).
    assert p["body"]["s3"]["secure"] is True and p["body"]["s3"]["chunksize"] == 5242880


def test_only_given_parameters_change_and_null_removes():
    p = _storage.plan(s3(encrypt=True), options={"bucket": "images", "encrypt": None})
    assert p["changed"] and p["changes"] == ["s3.bucket", "s3.encrypt"]
    assert p["body"] == {"s3": {"bucket": "images", "region": "us-east-1", "regionendpoint": "", "rootdirectory": "",
                                "secure": True}}
    assert p["driver"] == "s3"


def test_delete_and_readonly_keep_the_other_sections():
    current = dict(s3(), delete={"enabled": False}, redirect={"disable": True},
                   maintenance={"uploadpurging": {"enabled": True, "age": "168h"}})
    p = _storage.plan(current, delete_enabled=True, readonly=True)
    assert p["changes"] == ["delete.enabled", "maintenance.readonly.enabled"]
    assert p["body"]["redirect"] == {"disable": True}
    assert p["body"]["maintenance"] == {"uploadpurging": {"enabled": True, "age": "168h"}, "readonly": {"enabled": True}}
    assert p["body"]["s3"] == S3["s3"]


def test_switch_to_filesystem_forces_the_root_and_names_the_driver_first():
    p = _storage.plan(S3, driver="filesystem", options={"rootdirectory": "/data"})
    assert p["switch_from"] == "s3" and p["changes"][0] == "driver"
    assert p["body"] == {"filesystem": {"rootdirectory": "/storage"}}
    assert p["warnings"] == ["MSR keeps filesystem storage in /storage (where its volume is mounted): rootdirectory "
                             "/data is ignored"]
    # Read back, the filesystem driver is equal whatever root was asked for.
    again = _storage.plan({"filesystem": {"rootdirectory": "/storage"}}, driver="filesystem")
    assert not again["changed"] and again["warnings"] == []


def test_a_switch_starts_from_the_given_parameters_only():
    p = _storage.plan(S3, driver="azure", options={"accountname": "a", "container": "c"},
                      secret_options={"accountkey": SECRET})
    assert p["body"] == {"azure": {"accountname": "a", "container": "c", "accountkey": SECRET}}
    assert "azure.accountkey" in p["changes"] and p["changed_secrets"] == ["accountkey"]


def test_readable_secret_is_compared():
    current = s3(secretkey=SECRET)
    same = _storage.plan(current, secret_options={"secretkey": SECRET})
    assert not same["changed"] and same["unverified"] == []
    other = _storage.plan(current, secret_options={"secretkey": SECRET + "x"})
    assert other["changes"] == ["s3.secretkey"] and other["changed_secrets"] == ["secretkey"]
    assert other["body"]["s3"]["secretkey"] == SECRET + "x"


def test_redacted_secret_always_or_on_change():
    current = s3(secretkey="********")
    always = _storage.plan(current, secret_options={"secretkey": SECRET})
    assert always["changed"] and always["changes"] == ["s3.secretkey"] and always["unverified"] == ["secretkey"]
    quiet = _storage.plan(current, secret_options={"secretkey": SECRET}, update_secrets="on_change")
    assert not quiet["changed"] and quiet["unverified"] == ["secretkey"]
    # ... but sent with any other change.
    with_other = _storage.plan(current, options={"bucket": "b"}, secret_options={"secretkey": SECRET},
                               update_secrets="on_change")
    assert with_other["changes"] == ["s3.bucket"] and with_other["body"]["s3"]["secretkey"] == SECRET


def test_a_redacted_secret_is_never_sent_back():
    current = s3(secretkey="****")
    assert not _storage.plan(current)["changed"]        # nothing to send: fine
    with pytest.raises(MsrError) as err:
        _storage.plan(current, options={"bucket": "b"})
    assert str(err.value) == ("cannot change the s3 storage settings without secretkey: MSR does not return it, so "
                              "give it in secret_options")


def test_mask_hides_every_secret():
    doc = {"swift": {"username": "u", "password": "pw-1", "secretkey": "sk-1", "authurl": "https://x",
                     "customtoken": "tok-1", "region": "r"},
           "delete": {"enabled": True}}
    masked = _storage.mask(doc, secret_keys={"region"}, changed_secrets={"password"})
    assert masked["swift"] == {"username": "u", "password": "******** (changed)", "secretkey": "********",
                               "authurl": "https://x", "customtoken": "********", "region": "********"}
    for value in ("pw-1", "sk-1", "tok-1"):
        assert value not in json.dumps(masked)
    assert doc["swift"]["password"] == "pw-1"            # a copy
    gcs = {"gcs": {"bucket": "b", "credentials": {"type": "service_account", "private_key": "PRIVATE"}}}
    assert _storage.mask(gcs)["gcs"]["credentials"] == "********"
    assert sorted(_storage.secret_values(gcs)) == ["PRIVATE", "service_account"]


@pytest.mark.parametrize("driver,key,secret", [
    ("s3", "secretkey", True), ("s3", "accesskey", False), ("s3", "sessiontoken", True), ("s3", "keyid", False),
    ("azure", "accountkey", True), ("azure", "accountname", False), ("gcs", "credentials", True),
    ("gcs", "keyfile", False), ("swift", "password", True), ("oss", "accesskeysecret", True),
    ("oss", "accesskeyid", False), (None, "secretkey", True), (None, "bucket", False)])
def test_is_secret(driver, key, secret):
    assert _storage.is_secret(driver, key) is secret


def test_refusals():
    with pytest.raises(MsrError, match="^bucket given in both options and secret_options"):
        _storage.plan(S3, options={"bucket": "a"}, secret_options={"bucket": "b"})
    with pytest.raises(MsrError, match="^MSR has no storage driver set up: give driver"):
        _storage.plan({"delete": {"enabled": True}})
    with pytest.raises(MsrError, match=r"^MSR reports more than one storage driver \(azure, s3\)"):
        _storage.plan(dict(S3, azure={}))


def test_switch_refusal_needs_force_when_repositories_exist():
    p = _storage.plan(S3, driver="filesystem")
    assert _storage.switch_refusal(p, [], False) == (None, None)
    error, warning = _storage.switch_refusal(p, ["admin/app"], False)
    assert warning is None
    assert error == ("refusing to switch the storage driver from s3 to filesystem: the cluster holds images "
                     "(repository admin/app) that stay in the s3 storage, where MSR no longer finds them; move "
                     "them first, or set force: true")
    error, warning = _storage.switch_refusal(p, ["a/1", "a/2", "a/3", "a/4"], True)
    assert error is None
    assert warning == ("switching the storage driver from s3 to filesystem although the cluster holds images "
                       "(repositories a/1, a/2, a/3, ...): force is true, and MSR no longer serves the images in "
                       "the s3 storage")
    same_driver = _storage.plan(S3, options={"bucket": "x"})
    assert _storage.switch_refusal(same_driver, ["admin/app"], False) == (None, None)


def _view(healthy, status=True):
    nodes = [{"id": "n%d" % i, "name": "worker%d" % i, "role": "worker", "availability": "active", "state": "ready",
              "message": "", "address": "10.0.0.%d" % i, "labels": {}, "leader": False, "reachability": None}
             for i in (1, 2, 3)]
    ids = ["55f08c6d99d0", "db1ac7f3c922", "737a4a125beb"]
    containers = [{"id": rid, "node": "worker%d" % (i + 1), "version": "2.9.16", "container_state": "running"}
                  for i, rid in enumerate(ids)]
    urls = dict((rid, "https://10.0.0.%d" % (i + 1)) for i, rid in enumerate(ids))
    pings = dict((rid, {"status": 200 if i < healthy else 503, "healthy": i < healthy, "error": ""})
                 for i, rid in enumerate(ids))
    # Recorded after `msr-lab fault quorum-loss`: the cache still says OK for the stopped replicas.
    cs = {"replica_health": dict((rid, "OK") for rid in ids), "current_issues": [], "replica_timestamp": {}}
    return build_view(nodes, containers, urls, pings, cs if status else None, None,
                      observer=urls[ids[0]] if status else None,
                      errors=[] if status else ["MSR replica https://10.0.0.1 answered GET "
                                                "/api/v0/meta/cluster_status with HTTP 500: boom"])


def test_replica_for_storage():
    assert _storage.replica_for_storage(_view(3)) == "https://10.0.0.1"
    assert _storage.replica_for_storage(_view(2)) == "https://10.0.0.1"
    with pytest.raises(MsrError) as err:
        _storage.replica_for_storage(_view(1))
    assert str(err.value) == ("cannot read or change the storage settings: only 1 of 3 MSR replicas are healthy and "
                              "2 are needed for quorum; without a healthy majority MSR can neither read nor write "
                              "its settings (restore quorum first, see the emergency-repair runbook)")
    with pytest.raises(MsrError, match="^cannot read the storage settings: no replica answered "
                                       "/api/v0/meta/cluster_status: MSR replica https://10.0.0.1 answered"):
        _storage.replica_for_storage(_view(3, status=False))
    with pytest.raises(MsrError, match="^MKE shows no MSR replica"):
        _storage.replica_for_storage({"status_available": False, "replicas": [], "issues": []})


def test_scrub():
    assert _storage.scrub("key abc and abcdef", ["abc", "abcdef", ""]) == "key ******** and ********"
