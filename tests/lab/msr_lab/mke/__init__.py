"""MKE 3.x as MSR tooling sees it: login and tokens, the CA, nodes and the Docker API aggregated over the nodes
(msr2.md §3)."""
