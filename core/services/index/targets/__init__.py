"""Index targets: where documents are written. Each module here is the only
place that imports its client library."""
