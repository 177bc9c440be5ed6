#!/usr/bin/env bash
# The demo: the lab with one MSR replica, then the collection's own playbooks as a user runs them:
# preflight, scale_up to three replicas (each into the HAProxy pool once healthy), and the scheduler
# wrapper's reconcile reporting the cluster in sync.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"
# The lab's name (MSR_LAB_NAME) and state directory are msr-lab's own; MSR_DEMO_SUBNET runs the demo beside
# another lab (tests/integration/test_demo.py does).
lab=$(python -c 'from msr_lab.common.labfiles import state_dir; print(state_dir())')
demo=$lab/demo      # kept after the demo: the inventory, the backups and the report to look at

msr-lab down >/dev/null
msr-lab up --replicas 1 --lb-kind haproxy ${MSR_DEMO_SUBNET:+--subnet "$MSR_DEMO_SUBNET"}
mkdir -p "$demo"
msr-lab inventory --msr worker1,worker2,worker3 -o "$demo/inventory.yml"

# The collection as a user gets it: the release tarball, installed into an empty collections path.
# HOME holds the lab's ssh key and known_hosts, which the docker SDK's ssh:// transport reads.
rm -rf "$demo/collections" "$demo/dist"
ansible-galaxy collection build --output-path "$demo/dist" >/dev/null
ansible-galaxy collection install "$demo"/dist/msr-replicas-*.tar.gz -p "$demo/collections" >/dev/null
installed=$demo/collections/ansible_collections/msr/replicas
echo "msr.replicas $(ls "$demo/dist") installed into $demo/collections"
msr-lab ssh-config --home "$demo/home" >/dev/null
export HOME=$demo/home ANSIBLE_COLLECTIONS_PATH=$demo/collections ANSIBLE_HOST_KEY_CHECKING=True
export ANSIBLE_LOCAL_TEMP=$demo/tmp ANSIBLE_HOME=$demo/ansible

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "ansible-playbook msr.replicas.preflight   (every prerequisite at once; changes nothing)"
ansible-playbook -i "$demo/inventory.yml" msr.replicas.preflight

step "ansible-playbook msr.replicas.scale_up   (group msr = worker1..3: two joins, one at a time)"
# msr_preflight=false: the checks just ran (scale_up runs them first by default).
ansible-playbook -i "$demo/inventory.yml" msr.replicas.scale_up -e msr_backup_dir="$demo/backups" -e msr_preflight=false

step "msr-reconcile --report   (what cron or a systemd timer runs: exit 0 = in sync)"
set +e
"$installed/bin/msr-reconcile" -i "$demo/inventory.yml" --report "$demo/reconcile.json" --lock "$demo/reconcile.lock"
rc=$?
set -e
echo "msr-reconcile exit code: $rc"

step "What to look at"
msr-lab status
echo
echo "HAProxy's pool on lb1 (runtime API):"
ssh -F "$lab/ssh/config" lb1 "echo 'show servers state' | socat stdio /run/haproxy/admin.sock" \
  | awk '$1 !~ /^#/ && NF>5 {print "  " $2 "/" $4, ($6==2 ? "UP" : "not up")}'
echo
echo "Backups taken before each join:  ls -l $demo/backups"
ls -l "$demo/backups"
echo "The reconcile report (JSON):      $demo/reconcile.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); q=r['quorum']; print('  in_sync=%s, %d of %d replicas healthy (majority %d), actions=%d' % (r['in_sync'], q['healthy'], q['size'], q['majority'], len(r['actions'])))" "$demo/reconcile.json"
echo "The inventory the playbooks used: $demo/inventory.yml"
echo
echo "Try: $ROOT/.venv/bin/msr-lab fault stop-replica worker2, then"
echo "     HOME=$demo/home ANSIBLE_COLLECTIONS_PATH=$demo/collections $ROOT/.venv/bin/ansible-playbook -i $demo/inventory.yml msr.replicas.reconcile"
echo "     (MSR's health report lags by a few seconds, as the product's does; then it reports the drift. Add"
echo "     -e msr_remediate=true -e msr_backup_dir=$demo/backups to fix it); remove the lab with 'make lab-down'."
exit "$rc"
