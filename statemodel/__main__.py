import sys

from statemodel.cli import main

sys.exit(main())
