from wm_studio.cli import main

raise SystemExit(main())
