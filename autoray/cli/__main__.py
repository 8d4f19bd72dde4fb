"""``python -m autoray.cli``: the same CLI as the ``autoray`` script."""

from autoray.cli.main import main

if __name__ == "__main__":
    main()
