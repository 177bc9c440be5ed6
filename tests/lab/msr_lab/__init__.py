"""msr-lab: a multi-node MKE/MSR 2.9 emulation on one machine."""
