"""Shared plumbing: the lab's state model, its files, the HTTP/1.1 servers every emulated service uses, and the TLS
certificates they serve. Every other part builds on this one; it imports none of them."""
