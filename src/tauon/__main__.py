from tauon.cli import main

raise SystemExit(main())
