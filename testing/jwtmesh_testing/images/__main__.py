"""python -m jwtmesh_testing.images: build the images (see jwtmesh_testing.images.build)."""

import sys

from jwtmesh_testing.images.build import main

sys.exit(main())
