from shopsync.cli import main

raise SystemExit(main())
