"""The wallet domain: config, errors, paths, storage, the registry, coin files, crypto and the wallet service."""
