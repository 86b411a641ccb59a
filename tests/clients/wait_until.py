#!/usr/bin/env python3
"""Runs a command until what it prints equals the expected text, for tests
of work Koios does in the background (a stale copy catching up).

    wait_until.py SECONDS COMMAND... --equals TEXT

Prints the command's last output; exits 1 (with the last output and error)
if it never printed TEXT within SECONDS.
"""
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 4 or "--equals" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    split = args.index("--equals")
    seconds, command, expected = float(args[0]), args[1:split], args[split + 1]
    deadline = time.monotonic() + seconds
    while True:
        done = subprocess.run(command, capture_output=True, text=True)
        output = done.stdout.strip()
        if done.returncode == 0 and output == expected.strip():
            print(output)
            return 0
        if time.monotonic() > deadline:
            print(f"after {seconds}s the command printed {output!r} (expected {expected!r}); "
                  f"stderr: {done.stderr.strip()}", file=sys.stderr)
            print(output)
            return 1
        time.sleep(0.25)


if __name__ == "__main__":
    sys.exit(main())
