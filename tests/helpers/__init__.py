"""Helpers shared by the fault, lock, secrets, property and lost-write tests."""
