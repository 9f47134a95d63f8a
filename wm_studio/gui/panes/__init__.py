"""The studio's panes, one module each."""
