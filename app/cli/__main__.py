"""python -m app.cli: the same as the `cloudcoin-wallet` console script."""

from app.cli.main import main

if __name__ == "__main__":
    main()
