"""The ``edgeprov`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgeprov import __version__
from edgeprov.cli import device, dps, hub, serve
from edgeprov.errors import EdgeprovError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="edgeprov",
        description="Self-hosted provisioning service and hub for IoT Edge devices with symmetric keys.",
    )
    root.add_argument("--version", action="version", version=f"edgeprov {__version__}")
    commands = root.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True
    serve.register(commands)
    dps.register(commands)
    hub.register(commands)
    device.register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except EdgeprovError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
