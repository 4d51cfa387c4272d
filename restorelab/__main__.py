"""``python -m restorelab ...``: the command line (also under torchrun / accelerate launch)."""

from restorelab.app.cli import main

if __name__ == "__main__":
    main()
