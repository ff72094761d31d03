from shopsync.commands.main import main

raise SystemExit(main())
