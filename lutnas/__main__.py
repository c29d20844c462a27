"""``python -m lutnas ...``, which is also how ``torchrun ... -m lutnas supernet train ...`` starts each rank."""

from lutnas.cli import main

if __name__ == "__main__":
    main()
