import sys

from gatemq.cpython.cli import main

sys.exit(main())
