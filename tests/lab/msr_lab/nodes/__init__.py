"""The nodes: one network namespace per node with its own UTS, mount and PID namespaces, a real sshd, its files
and its teardown (DESIGN.md §5; what works here: machine-notes.md "Multi-node lab")."""
