"""The ZIP library of the jobs: the streaming writer, the read-back verifier and their shared record layouts."""
