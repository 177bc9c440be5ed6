"""The MSR 2.x cluster: RethinkDB membership, health and quorum, each replica's containers and volumes on its
node, and the HTTP API every replica serves (msr2.md §1.8, §2, §4)."""
