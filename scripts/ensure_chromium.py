"""Make sure headless Chromium is available for the browser tests (run by `make test`).

Installs Debian's ``chromium`` package with apt-get when /usr/bin/chromium is
missing and apt is available. Prints what it did. Never fails the test run:
without chromium, the tests marked ``browser`` skip with a clear reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        print(f"ensure_chromium: {CHROMIUM} present")
        return 0
    apt = shutil.which("apt-get")
    if apt is None:
        print("ensure_chromium: chromium missing and apt-get not available; browser tests will be skipped")
        return 0
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        print("ensure_chromium: chromium missing and not root (no sudo); browser tests will be skipped")
        return 0
    print("ensure_chromium: installing Debian's chromium package with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*sudo, apt, "update", "-q"], [*sudo, apt, "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"ensure_chromium: {' '.join(cmd)} failed ({exc}); browser tests will be skipped")
            return 0
        if done.returncode != 0:
            print(f"ensure_chromium: {' '.join(cmd)} exited {done.returncode}; browser tests will be skipped\n"
                  + done.stdout[-2000:])
            return 0
    print(f"ensure_chromium: installed {CHROMIUM}" if os.path.exists(CHROMIUM)
          else "ensure_chromium: apt-get finished but chromium is still missing; browser tests will be skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
