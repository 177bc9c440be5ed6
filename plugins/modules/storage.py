#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: storage
short_description: Read and set the image storage of MSR 2.x
version_added: 0.1.0
description:
  - Reads the image storage settings of Mirantis Secure Registry (C(/api/v0/admin/settings/registry/simple))
    and, when they differ from the options, replaces them with a C(PUT), then reads them again to report
    what MSR stored.
  - The settings are the distribution C(storage) section - one driver (O(driver)) with its parameters
    (O(options), O(secret_options)), plus C(delete) (O(delete_enabled)) and C(maintenance.readonly)
    (O(readonly)). Sections this module does not manage (C(redirect), C(cache), other C(maintenance)
    keys) are kept as they are.
  - The settings are cluster-wide. The module talks to the replica that answers C(cluster_status) (a
    healthy one first, or O(msr_url)), found through MKE like M(msr.replicas.cluster_info) does, and
    refuses when the replicas have no quorum, because MSR can neither read nor write them then.
  - Secret parameters never appear in the output, the diff, warnings or errors; they show as
    C(********).
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.connection
  - msr.replicas.attributes
  - msr.replicas.attributes.actiongroup_msr
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the settings and the repositories and predicts the change and every refusal of
        the module itself. MSR's own check of the new settings (it test-writes an S3 bucket with the keys
        given, for example) happens only on a real run.
  diff_mode:
    support: full
    details:
      - Before and after are the storage sections with secrets masked; a secret being changed shows as
        C(******** (changed)).
  idempotent:
    support: full
    details:
      - Only when MSR returns the secret parameters, or with O(update_secrets=on_change). See O(update_secrets).
options:
  driver:
    description:
      - The storage driver. Omit it to keep the current driver and change only its parameters,
        O(delete_enabled) or O(readonly).
      - NFS storage is the V(filesystem) driver on an NFS volume set up at install
        (C(--nfs-storage-url)); this module does not mount anything.
      - Changing the driver of a cluster that holds repositories needs O(force=true).
    type: str
    choices: [filesystem, s3, azure, gcs, swift, oss]
  options:
    description:
      - Parameters of the driver, as the distribution driver documents them (for V(s3) for example
        C(bucket), C(region), C(regionendpoint), C(accesskey), C(secure), C(rootdirectory)).
      - Only the parameters given are managed; the others keep their current value, unless O(driver)
        changes, in which case the new driver has exactly the parameters given. A parameter set to
        V(null) is removed.
      - Values are compared as MSR means them - V(5) and V("5"), V(true) and V("True") are the same, an
        empty value is no value.
      - For V(filesystem), MSR always stores images in C(/storage) (where its volume is mounted); another
        C(rootdirectory) is ignored with a warning.
      - Secrets (C(secretkey), C(accountkey), C(password), C(credentials), C(accesskeysecret), any name
        containing C(secret), C(password), C(token) or C(credential)) are refused here, because this option
        is not C(no_log); give them in O(secret_options).
    type: dict
  secret_options:
    description:
      - Secret parameters of the driver, for example C(secretkey) for V(s3), C(accountkey) for V(azure),
        C(password) for V(swift), C(credentials) for V(gcs), C(accesskeysecret) for V(oss). Merged with
        O(options) (a parameter may not be in both).
      - Never logged nor shown. They are compared with what MSR returns; see O(update_secrets) for a
        secret that MSR returns redacted.
    type: dict
  update_secrets:
    description:
      - What to do with a secret of O(secret_options) that MSR returns redacted (as asterisks), so that
        it cannot be compared. When MSR returns the secret itself (the lab does), it is compared and this
        option does not matter.
      - V(always) sends it, reporting a change on every run (the module cannot prove it equal).
      - V(on_change) sends it only with another change; a changed secret alone then goes unnoticed.
      - To change other settings while MSR redacts a secret, that secret must be given, or the module
        refuses (sending the redacted value back would break the storage).
    type: str
    choices: [always, on_change]
    default: always
  delete_enabled:
    description:
      - Whether MSR may delete image data (C(storage.delete.enabled)); needed for garbage collection.
      - Omit it to keep the current setting. Not set means disabled.
    type: bool
  readonly:
    description:
      - Read-only maintenance mode of the registry (C(storage.maintenance.readonly.enabled)); pulls work,
        pushes are refused.
      - Omit it to keep the current setting. Not set means disabled.
    type: bool
  force:
    description:
      - Allow changing O(driver) although the cluster holds repositories. Their images stay in the old
        storage, where MSR no longer looks; move them first.
      - Any repository counts as holding images (the module does not list tags).
    type: bool
    default: false
notes:
  - The settings are read and written through one replica; MSR shares them with the others through its
    database.
  - Secrets are kept out of syslog too, because they are given in the V(no_log) O(secret_options).
"""

EXAMPLES = r"""
---
- name: Keep images in S3
  msr.replicas.storage:
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"
    driver: s3
    options:
      bucket: msr-images
      region: us-east-1
      accesskey: AKIAIOSFODNN7EXAMPLE
      secure: true
    secret_options:
      secretkey: "{{ vault_s3_secret_key }}"
    delete_enabled: true

- name: Read-only mode during a migration, MKE options set once for the collection
  module_defaults:
    group/msr.replicas.msr:
      mke_url: https://mke.example.com
      mke_password: "{{ vault_mke_password }}"
      mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
      msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"
  block:
    - name: Stop pushes
      msr.replicas.storage:
        readonly: true

    - name: Move to Azure although repositories exist (their images were copied beforehand)
      msr.replicas.storage:
        driver: azure
        options:
          accountname: msrimages
          container: msr
          realm: core.windows.net
        secret_options:
          accountkey: "{{ vault_azure_account_key }}"
        force: true

    - name: Read the current settings only (check mode never changes them)
      msr.replicas.storage:
      check_mode: true
      register: storage

    - name: Show the driver
      ansible.builtin.debug:
        msg: "{{ storage.driver }}"
"""

RETURN = r"""
driver:
  description: The storage driver after the run (predicted in check mode).
  returned: success
  type: str
  sample: s3
storage:
  description:
    - The storage section as MSR reads it back after the change (predicted in check mode), secrets
      replaced by C(********).
  returned: success
  type: dict
  sample:
    delete: {enabled: true}
    maintenance: {readonly: {enabled: false}}
    s3: {bucket: msr-images, region: us-east-1, accesskey: AKIAIOSFODNN7EXAMPLE, secretkey: "********", secure: true}
changes:
  description:
    - Names of the settings that differ (C(driver) first when it changes, then C(<section>.<parameter>)).
      Never their values.
  returned: success
  type: list
  elements: str
  sample: [s3.bucket, s3.secretkey]
unverified_secrets:
  description: Secret parameters that MSR returns redacted, so the module could not compare them.
  returned: success
  type: list
  elements: str
  sample: []
repositories:
  description:
    - Up to 10 repositories (C(namespace/name)) found when the driver changes; empty otherwise.
  returned: success
  type: list
  elements: str
  sample: [admin/app]
replica:
  description: The MSR address the settings were read from and written to.
  returned: success
  type: str
  sample: https://172.31.16.117
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils import _storage
from ansible_collections.msr.replicas.plugins.module_utils._cluster import clients_from_params, observe
from ansible_collections.msr.replicas.plugins.module_utils._common import (
    MsrError,
    check_connection_params,
    connection_argument_spec,
)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        driver=dict(type="str", choices=list(_storage.DRIVERS)),
        options=dict(type="dict"),
        secret_options=dict(type="dict", no_log=True),
        update_secrets=dict(type="str", choices=["always", "on_change"], default="always", no_log=False),
        delete_enabled=dict(type="bool"),
        readonly=dict(type="bool"),
        force=dict(type="bool", default=False),
    )
    return spec


class StorageRun:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.secrets = list(module.no_log_values)
        self.repositories = []

    def hide(self, storage):
        """Keep the secrets MSR returned out of everything the module prints, whatever path they take."""
        values = _storage.secret_values(storage)
        self.secrets.extend(values)
        self.module.no_log_values.update(values)

    def plan(self, current):
        p = self.p
        return _storage.plan(current, driver=p["driver"], options=p["options"], secret_options=p["secret_options"],
                             delete_enabled=p["delete_enabled"], readonly=p["readonly"],
                             update_secrets=p["update_secrets"])

    def run(self):
        mke, msr_factory = clients_from_params(self.p)
        view = observe(mke, msr_factory, msr_url=self.p["msr_url"])
        url = _storage.replica_for_storage(view)
        client = msr_factory(url)
        current = self.call(client.storage_settings)
        self.hide(current)
        plan = self.plan(current)
        for text in plan["warnings"] + _storage.shared_storage_warning(plan, view):
            self.module.warn(text)
        if plan["switch_from"]:
            self.repositories = self.call(client.repositories)
            error, warning = _storage.switch_refusal(plan, self.repositories, self.p["force"])
            if error:
                raise MsrError(error)
            if warning:
                self.module.warn(warning)
        secret_keys = set(self.p["secret_options"] or ())
        after = plan["body"]
        if plan["changed"] and not self.module.check_mode:
            self.call(client.put_storage, plan["body"])
            after = self.call(client.storage_settings)
            self.hide(after)
            again = _storage.plan(after, driver=plan["driver"], options=self.p["options"],
                                  secret_options=self.p["secret_options"], delete_enabled=self.p["delete_enabled"],
                                  readonly=self.p["readonly"], update_secrets="on_change")
            if again["changed"]:
                raise MsrError("MSR accepted the storage settings but reads back other values for: %s"
                               % ", ".join(again["changes"]))
        elif not plan["changed"]:
            after = current
        result = dict(
            changed=plan["changed"],
            driver=plan["driver"],
            storage=_storage.mask(after, secret_keys),
            changes=plan["changes"],
            unverified_secrets=plan["unverified"],
            repositories=self.repositories,
            replica=url,
        )
        if self.module._diff:
            result["diff"] = {"before": _storage.mask(current, secret_keys),
                              "after": _storage.mask(plan["body"] if plan["changed"] else current, secret_keys,
                                                     plan["changed_secrets"])}
        return result

    @staticmethod
    def call(fn, *args):
        try:
            return fn(*args)
        except MsrError as exc:
            raise MsrError(str(exc) + _storage.database_hint(str(exc)))


def refuse_secrets_in_options(module):
    """A secret in the plain options would be shown and logged: refuse it (masking it in this answer)."""
    driver = module.params["driver"]
    found = sorted(k for k in module.params["options"] or {} if _storage.is_secret(driver, k))
    if found:
        for key in found:
            module.no_log_values.update(v for v in _storage.leaves(module.params["options"][key]) if v)
        module.fail_json(msg="options.%s %s secret: give %s in secret_options, which is never logged or shown"
                             % (", options.".join(found), "is a" if len(found) == 1 else "are",
                                "it" if len(found) == 1 else "them"))


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True))


def run(module):
    refuse_secrets_in_options(module)
    check_connection_params(module)
    job = StorageRun(module)
    try:
        result = job.run()
    except MsrError as exc:
        module.fail_json(msg=_storage.scrub(str(exc), job.secrets), repositories=job.repositories)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
