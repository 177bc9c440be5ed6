#!/usr/bin/env bash
# The demo: bring the lab up with one MSR replica, then join a second and third replica by hand with
# the real docker CLI, exactly as the MSR docs describe (docker run mirantis/dtr join ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
lab=${MSR_LAB_DIR:-/var/lib/msr-lab}

msr-lab down >/dev/null
msr-lab up
inv=$(mktemp); trap 'rm -f "$inv"' EXIT
msr-lab inventory -o "$inv"
field() { python3 -c "import sys,yaml; print(yaml.safe_load(open('$inv'))['all']['vars']['$1'])"; }
export UCP_PASSWORD; UCP_PASSWORD=$(field msr_mke_password)
mke_url=$(field msr_mke_url)
ca="$lab/pki/ca.pem"

# The bootstrap host is manager1: its docker socket is reachable from here as a file.
export DOCKER_HOST="unix://$lab/nodes/manager1/run/docker.sock"
existing=$(docker -H "unix://$lab/nodes/worker1/run/docker.sock" ps --filter name=dtr-rethinkdb- \
           --format '{{.Label "com.docker.dtr.replica"}}')
echo "== existing replica: $existing"
for node in worker2 worker3; do
  echo "== docker run --rm -e UCP_PASSWORD mirantis/dtr:2.9.16 join --ucp-node $node ..."
  docker run --rm -e UCP_PASSWORD mirantis/dtr:2.9.16 join --ucp-node "$node" \
    --ucp-url "$mke_url" --ucp-username admin --ucp-ca "$(cat "$ca")" \
    --existing-replica-id "$existing" --nocolor
done
# Step 3 of the MSR docs: put each new replica in the load-balancing pool once it is healthy.
# HAProxy's runtime API on lb1, over ssh as on a real LB host (runtime only: a reload forgets it).
lb() { ssh -F "$lab/ssh/config" lb1 "echo '$1' | socat stdio /run/haproxy/admin.sock"; }
for node in worker2 worker3; do
  addr=$(python3 -c "import yaml; print(yaml.safe_load(open('$inv'))['all']['children']['mke_workers']['hosts']['$node']['ansible_host'])")
  for pool in "msr_http 80" "msr_https 443"; do
    set -- $pool
    lb "add server $1/$node $addr:$2 check port 80 inter 1s fall 2 rise 2"
    lb "enable health $1/$node"
    lb "enable server $1/$node"
  done
done
sleep 3   # two health checks (rise 2, inter 1s)
echo "== the pool, as HAProxy sees it"
lb "show servers state" | awk '$1 !~ /^#/ && NF>5 {print $2, $4, $5, ($6==2 ? "UP" : "not up")}'

echo "== docker over ssh: the replica containers on worker2"
ssh -F "$lab/ssh/config" worker2 docker ps --format "'{{.Names}}\t{{.Status}}'"
msr-lab status
echo "The lab stays up: try 'msr-lab fault --help', and remove it with 'make lab-down'."
