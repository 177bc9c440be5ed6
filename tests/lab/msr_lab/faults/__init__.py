"""Fault injection: each fault changes the lab's state the way the real failure would (the lab README lists them)."""
