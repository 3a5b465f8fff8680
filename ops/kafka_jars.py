"""Kafka's jars without Maven: `kafka/jars.lock` names every jar of the local broker's runtime — group, artifact,
version and SHA-256 — as `kafka/pom.xml` resolves them. `make setup` (and `bread kafka` or `bread up`, when the
jars are missing) downloads each from Maven Central with Python, checks its digest, and keeps it in
`kafka/target/lib`; a jar whose digest differs is refused, named, and not kept. A jar already there with the right
digest is not downloaded again, and one the lock no longer names is removed (the broker runs on every jar there).

`bread kafka-lock` writes the lock again from the pom with Maven, after the pom changes.

    python -m ops.kafka_jars       fetch what the lock names (what `make setup` runs)
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agents.settings import PROJECT_ROOT

POM = PROJECT_ROOT / "kafka" / "pom.xml"
LOCK = POM.parent / "jars.lock"
LIBS = POM.parent / "target" / "lib"  # where they are kept, unless KAFKA_LIB_DIR says otherwise
HEADER = """\
# Every jar the local Kafka broker runs on, as kafka/pom.xml resolves them (runtime scope): coordinates and SHA-256.
# Written by `bread kafka-lock` (with Maven); `make setup` downloads each from Maven Central and checks its digest.
"""
Download = Callable[[str, Path], None]


class JarRefused(RuntimeError):
    """A jar could not be had as the lock names it: not downloadable, or not the bytes the lock's digest says."""


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str
    classifier: str = ""

    @property
    def coordinates(self) -> str:
        return ":".join(filter(None, (self.group, self.artifact, self.version, self.classifier)))

    @property
    def file_name(self) -> str:  # as Maven's copy-dependencies names it
        return f"{self.artifact}-{self.version}{f'-{self.classifier}' if self.classifier else ''}.jar"

    def url(self, repository: str) -> str:
        return f"{repository}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"


def read_lock(text: str) -> list[Jar]:
    jars = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coordinates, sha256 = line.split()
        group, artifact, version, *classifier = coordinates.split(":")
        jars.append(Jar(group, artifact, version, sha256, *classifier))
    return jars


def lock_text(jars: list[Jar]) -> str:
    return HEADER + "".join(f"{jar.coordinates} {jar.sha256}\n" for jar in sorted(jars, key=lambda j: j.coordinates))


def digest_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, to: Path) -> None:
    with urllib.request.urlopen(url, timeout=120) as answer, open(to, "wb") as out:
        while chunk := answer.read(1 << 20):
            out.write(chunk)


def fetch(jars: list[Jar], libs: Path, repository: str, get: Download = download,
          say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> list[Jar]:
    """Make `libs` hold exactly the locked jars, downloading those missing or different; the ones downloaded."""
    libs.mkdir(parents=True, exist_ok=True)
    wanted = {jar.file_name for jar in jars}
    for stray in libs.glob("*.jar"):
        if stray.name not in wanted:
            stray.unlink()
    missing = [jar for jar in jars if not (libs / jar.file_name).exists()
               or digest_of(libs / jar.file_name) != jar.sha256]
    if missing:
        say(f"fetching {len(missing)} of Apache Kafka's jars from {repository} into {libs} ...")
    for jar in missing:
        part = libs / f".{jar.file_name}.part"
        try:
            get(jar.url(repository), part)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise JarRefused(f"{jar.coordinates}: could not download {jar.url(repository)}: {exc}") from None
        got = digest_of(part)
        if got != jar.sha256:
            part.unlink()
            raise JarRefused(f"{jar.coordinates}: {jar.url(repository)} has SHA-256 {got}, not {jar.sha256} as "
                             f"{LOCK.name} says; refused")
        part.replace(libs / jar.file_name)
    return missing


def resolved_by_maven(mvn: str, pom: Path = POM) -> list[Jar]:
    """The jars `pom` resolves to at runtime, as Maven resolves them (each with the digest of the file it got)."""
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "jars.txt"
        done = subprocess.run([mvn, "-q", "-B", "-f", str(pom), "dependency:list", "-DincludeScope=runtime",
                               "-DoutputAbsoluteArtifactFilename=true", f"-DoutputFile={listing}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise JarRefused(f"mvn could not resolve {pom}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        jars = []
        for line in listing.read_text().splitlines():
            fields = line.strip().split(":")
            if len(fields) < 6 or fields[2] != "jar":  # group:artifact:jar[:classifier]:version:scope:path
                continue
            group, artifact, _, *rest = fields
            classifier, version, _, path = rest if len(rest) == 4 else ["", *rest]
            jar = Path(path.split(" -- ")[0].strip())  # newer plugins add " -- module <name>"
            jars.append(Jar(group, artifact, version, digest_of(jar), classifier))
        return jars


def main() -> int:
    from agents.settings import Settings

    settings = Settings.from_env()
    try:
        fetch(read_lock(LOCK.read_text()), Path(settings.kafka_lib_dir) if settings.kafka_lib_dir else LIBS,
              settings.kafka_maven_repository)
    except JarRefused as exc:
        print(f"bread: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
