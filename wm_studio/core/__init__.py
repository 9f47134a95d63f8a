"""Everything that computes. Nothing in this package may import Qt (tests/core/test_no_qt.py enforces it)."""
