"""The load-balancer nodes: real HAProxy and NGINX in TCP mode in front of the replicas (msr2.md §4)."""
