"""Object stores: a directory (embedded default) or S3."""
