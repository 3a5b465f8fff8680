"""A kustomize for the manifest tests on a machine with neither kubectl, kustomize nor Go: Go's own toolchain, from
the Go module proxy (where `GOTOOLCHAIN` gets it), pinned here with its SHA-256, then kustomize built with it from
the same proxy (its modules checked against Go's checksum database, as every `go install` checks them).

    python -m ops.kustomize DIR VERSION    put a kustomize VERSION in DIR (what `make` runs when nothing else has one)
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from ops.kafka_jars import digest_of, download

GO = "1.26.8"
PROXY = "https://proxy.golang.org"
# The toolchain's module zip, per platform: its SHA-256 as fetched from the proxy when pinned.
TOOLCHAINS = {
    "linux-amd64": "30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7",
    "linux-arm64": "02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99",
}


class NoToolchain(RuntimeError):
    """No pinned Go toolchain for this machine, or the one fetched is not the one pinned."""


def this_platform() -> str:
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "")
    return f"{platform.system().lower()}-{machine}"


def toolchain_url(where: str, proxy: str = PROXY) -> str:
    return f"{proxy}/golang.org/toolchain/@v/v0.0.1-go{GO}.{where}.zip"


def unpacked_go(tools: Path, where: str | None = None, proxy: str = PROXY,
                pinned: dict[str, str] = TOOLCHAINS) -> Path:
    """Go's toolchain under `tools/go` (fetched and checked once); the path of its `go`."""
    where = where or this_platform()
    if where not in pinned:
        raise NoToolchain(f"no Go toolchain is pinned for {where or platform.machine()}")
    root = tools / "go"
    go = root / "bin" / "go"
    if go.exists():
        return go
    tools.mkdir(parents=True, exist_ok=True)
    archive = tools / f"go{GO}.{where}.zip"
    url = toolchain_url(where, proxy)
    print(f"fetching Go {GO} from {proxy} to build kustomize ...", file=sys.stderr, flush=True)
    download(url, archive)
    digest = digest_of(archive)
    if digest != pinned[where]:
        archive.unlink()
        raise NoToolchain(f"{url} has SHA-256 {digest}, not {pinned[where]} as pinned; refused")
    prefix = f"golang.org/toolchain@v0.0.1-go{GO}.{where}/"
    with zipfile.ZipFile(archive) as packed:
        for entry in packed.infolist():
            if entry.is_dir() or not entry.filename.startswith(prefix):
                continue
            target = root / entry.filename.removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(packed.read(entry))
            if target.parent.name == "bin" or "/pkg/tool/" in entry.filename:
                target.chmod(0o755)  # a module zip keeps no file modes
    archive.unlink()
    return go


def install(tools: Path, version: str) -> Path:
    go = unpacked_go(tools)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOBIN": str(tools), "GOPATH": str(tools / "gopath"),
           "GOCACHE": str(tools / "gocache"), "GOFLAGS": "-modcacherw"}
    subprocess.run([str(go), "install", f"sigs.k8s.io/kustomize/kustomize/v5@{version}"], env=env, check=True)
    for built_with in ("go", "gopath", "gocache"):  # a few hundred MB that only building needed
        shutil.rmtree(tools / built_with)
    return tools / "kustomize"


if __name__ == "__main__":
    try:
        print(install(Path(sys.argv[1]).resolve(), sys.argv[2]))
    except (NoToolchain, OSError, subprocess.CalledProcessError) as exc:
        print(f"the manifest tests need kustomize: install kubectl, kustomize or Go ({exc})", file=sys.stderr)
        sys.exit(1)
