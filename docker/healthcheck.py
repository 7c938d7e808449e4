#!/usr/bin/env python3
"""Container healthcheck for the P2 image: exit 0 only if the URL answers HTTP 200.

The slim Python image has no curl; this uses the standard library only.
Usage: p2-healthcheck URL [TIMEOUT_SECONDS]
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def check(url: str, timeout: float) -> int:
    # No proxies: the probe is always for this container's own port.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    if status != 200:
        print(f"unhealthy: {url}: HTTP {status}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: p2-healthcheck URL [TIMEOUT_SECONDS]", file=sys.stderr)
        return 2
    timeout = float(argv[2]) if len(argv) == 3 else 25.0
    return check(argv[1], timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
