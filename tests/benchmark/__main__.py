import sys

from tests.benchmark.cli import main

sys.exit(main())
