import sys

from tapharness.sandbox.cli import main

sys.exit(main())
