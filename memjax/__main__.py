import sys

from memjax.cli import main

sys.exit(main())
