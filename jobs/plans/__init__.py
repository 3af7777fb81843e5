"""Backup plans: a wallet, destinations, a schedule and a retention policy, run as plan-run jobs."""
