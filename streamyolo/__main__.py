import sys

from streamyolo.cli import main

sys.exit(main())
