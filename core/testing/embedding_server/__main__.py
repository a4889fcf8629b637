import sys

from core.testing.embedding_server.server import main

sys.exit(main())
