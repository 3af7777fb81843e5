"""The cloudcoin-wallet command-line client: a pure HTTP client of the server; nothing imports it."""
