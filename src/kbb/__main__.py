from kbb.cli import main

raise SystemExit(main())
