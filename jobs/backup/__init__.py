"""The backup job: checks, the walk and the archive, coin handling, the manifest and the output file."""
