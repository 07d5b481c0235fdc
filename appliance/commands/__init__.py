"""One module per CLI command group; each defines register(subparsers). Keep top-level imports light."""
