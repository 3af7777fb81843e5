"""The ZIP format: the streaming writer, its reader-back, the streaming reader, their record layouts."""
