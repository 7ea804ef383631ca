import sys

from edgeprov.cli.main import main

sys.exit(main())
