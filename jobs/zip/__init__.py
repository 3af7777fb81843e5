"""The ZIP library of the jobs: the streaming writer, the read-back verifier, the streaming reader and their shared record layouts."""
