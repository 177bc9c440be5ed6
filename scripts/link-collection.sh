# Sourced by scripts/lint.sh and scripts/docs.sh: `link_collection DIR` makes this checkout importable as
# msr.replicas through DIR/collections-<hash of the checkout's path>/ansible_collections/msr/replicas, a
# symlink (so what is checked is the checkout itself), and points ANSIBLE_COLLECTIONS_PATH there.
link_collection() {
  local colls
  colls="$1/collections-$(printf %s "$ROOT" | sha1sum | cut -c1-8)"
  mkdir -p "$colls/ansible_collections/msr"
  ln -sfn "$ROOT" "$colls/ansible_collections/msr/replicas"
  export ANSIBLE_COLLECTIONS_PATH="$colls"
}
