import sys

from blurbkit.cli.main import main

sys.exit(main())
