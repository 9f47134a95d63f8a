#!/usr/bin/env python3
"""`python main.py` starts the studio, exactly as the `wm-studio` command does."""
from wm_studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
