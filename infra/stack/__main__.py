"""``python -m infra.stack up|down|status|env`` (what infra/services.sh runs)."""

from __future__ import annotations

import argparse
import sys

from infra.stack import procs
from infra.stack.stack import down, status, up
from infra.stack.state import State, default_state_dir, export_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/services.sh", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the stack (idempotent) and print the client env as export lines")
    d = sub.add_parser("down", help="stop every service (idempotent)")
    d.add_argument("--purge", action="store_true", help="also delete the state folder (data, credentials)")
    sub.add_parser("status", help="each service up/down with its port; exit 1 unless all are up")
    sub.add_parser("env", help="print the env file of the running stack")
    args = parser.parse_args(argv)
    state = State(default_state_dir())
    if args.cmd == "up":
        try:
            sys.stdout.write(export_lines(up(state)))
        except procs.ServiceError as exc:
            print(f"infra/services.sh up: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "down":
        down(state, purge=args.purge)
        return 0
    if args.cmd == "env":
        if not state.env_file.is_file():
            print(f"no stack env at {state.env_file}: run infra/services.sh up", file=sys.stderr)
            return 1
        sys.stdout.write(state.env_file.read_text())
        return 0
    return 0 if status(state) else 1


if __name__ == "__main__":
    sys.exit(main())
