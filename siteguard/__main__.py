from siteguard.cli import main

raise SystemExit(main())
