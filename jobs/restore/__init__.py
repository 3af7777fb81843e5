"""The restore and verify jobs: the plan, the archive checks they share, extraction and the temp folder."""
