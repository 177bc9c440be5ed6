"""The MSR bootstrapper, `mirantis/dtr:<version>` run as a container program of the engine: its commands, flags,
env vars, log lines, refusals and exit codes (msr2.md §1)."""
