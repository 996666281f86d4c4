"""Offline toolchain: OpenTofu, a local provider mirror, the Python venvs and the Lambda layer.

Runs on the machine's python3 with the standard library only, because it is what
creates the venv. Everything it builds lives under a cache directory outside the
repository (``$TAPSTACK_CACHE``, default ``~/.cache/tapstack``), keyed by version or
by the hash of what it was built from, so a fresh clone reuses it and a fresh
machine rebuilds it.

    python3 tapharness/toolchain.py setup   # idempotent; builds what is missing
    python3 tapharness/toolchain.py env     # shell exports for bin/tofu (never builds)
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# Every pinned version of the toolchain lives here.
OPENTOFU_MODULE = "github.com/opentofu/opentofu"
OPENTOFU_VERSION = "1.10.10"
AWS_PROVIDER_VERSION = "5.100.0"
ARCHIVE_PROVIDER_VERSION = "2.7.1"
LAMBDA_PYTHON_VERSION = "3.12"
MIN_TERRAFORM = (1, 5)

ROOT = Path(__file__).resolve().parent.parent
# tap_common, the runtime library every stack's layer carries, has a home of its own beside the stacks.
SHARED_RUNTIME = ROOT / "runtime" / "tap_common"
CACHE = Path(os.environ.get("TAPSTACK_CACHE", Path.home() / ".cache" / "tapstack"))
REGISTRY_HOSTS = ("registry.opentofu.org", "registry.terraform.io")
PLUGIN_SEARCH_DIRS = (
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "~/.local/share/opentofu/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
    "/opt/tf-plugins",
)


def _platform() -> str:
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"{platform.system().lower()}_{machine}"


def _say(msg: str) -> None:
    print(f"[toolchain] {msg}", flush=True)


def _hash_files(paths: list[Path]) -> str:
    """The hash of the files' names and contents (wherever they are: a stack may live outside the repository)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _run_logged(cmd: list[str], log: Path, phase: str, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> None:
    """Run a long command with its output in ``log`` and a progress line every 30 s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    done = threading.Event()

    def progress() -> None:
        while not done.wait(30):
            _say(f"{phase}: still running, {time.monotonic() - start:.0f}s elapsed (log: {log})")

    ticker = threading.Thread(target=progress, daemon=True)
    ticker.start()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    done.set()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise SystemExit(f"{phase} failed after {elapsed:.0f}s (exit {proc.returncode}); last lines of {log}:\n"
                         + "\n".join(tail))
    _say(f"{phase}: done in {elapsed:.0f}s")


# --- OpenTofu -------------------------------------------------------------------------


def _version_of(binary: str) -> tuple[int, int] | None:
    """(major, minor) of an OpenTofu/Terraform binary. Kept per binary file (path, size, mtime) in the
    cache: asking the binary costs a quarter of a CPU second, and every plan, deploy and `bin/tofu`
    call looks the toolchain up again (43 times in one `make test`). Not ``tapharness.memo``: that
    module builds on this one, and `bin/tofu` runs this file as a script with no package around it."""
    try:
        stat = os.stat(binary)
    except OSError:
        return None
    key = f"{os.path.realpath(binary)}:{stat.st_size}:{stat.st_mtime_ns}"
    known = CACHE / "tool-versions.json"
    try:
        versions = json.loads(known.read_text())
    except (OSError, ValueError):
        versions = {}
    if isinstance(versions.get(key), list):
        return tuple(versions[key])  # type: ignore[return-value]
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull}, check=False).stdout
        parts = json.loads(out)["terraform_version"].split(".")
        version = int(parts[0]), int(parts[1])
    except (OSError, ValueError, KeyError, IndexError, subprocess.TimeoutExpired):
        return None
    if CACHE.is_dir():
        tmp = known.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**versions, key: list(version)}))
        tmp.replace(known)
    return version


def _cached_tofu() -> Path:
    return CACHE / f"opentofu-{OPENTOFU_VERSION}" / "tofu"


def find_tofu() -> Path | None:
    """OpenTofu from $TOFU_BIN, PATH or the cache; Terraform >= 1.5 on PATH as a last resort."""
    candidates = [os.environ.get("TOFU_BIN"), shutil.which("tofu"), str(_cached_tofu())]
    wrapper = (ROOT / "bin" / "tofu").resolve()
    for candidate in candidates:
        # bin/tofu on PATH is this project's wrapper, which asks this function: skip it.
        if candidate and Path(candidate).resolve() == wrapper:
            continue
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            version = _version_of(candidate)
            if version and version >= MIN_TERRAFORM:
                return Path(candidate)
    return None


def _find_terraform() -> Path | None:
    found = shutil.which("terraform")
    if found and (_version_of(found) or (0, 0)) >= MIN_TERRAFORM:
        return Path(found)
    return None


def _go_env() -> dict[str, str]:
    return {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


def _build_tofu() -> Path:
    """Build OpenTofu from its Go module: `go install` refuses it because of its replace directives."""
    if not shutil.which("go"):
        raise SystemExit("OpenTofu is missing and there is no Go toolchain to build it: install tofu >= 1.5")
    module = f"{OPENTOFU_MODULE}@v{OPENTOFU_VERSION}"
    log = CACHE / "logs" / f"opentofu-{OPENTOFU_VERSION}.log"
    _say(f"building OpenTofu {OPENTOFU_VERSION} from its Go module (log: {log})")
    info = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True,
                          env=_go_env(), cwd=CACHE, check=False)
    if info.returncode != 0:
        raise SystemExit(f"go mod download {module} failed:\n{info.stdout}{info.stderr}")
    src = CACHE / "src" / f"opentofu-{OPENTOFU_VERSION}"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(json.loads(info.stdout)["Dir"], src)
    for path in src.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    target = _cached_tofu()
    ldflags = "-s -w -X github.com/opentofu/opentofu/version.dev=no"
    _run_logged(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(target) + ".tmp", "./cmd/tofu"],
                log, "opentofu build", cwd=src, env=_go_env())
    os.replace(str(target) + ".tmp", target)
    shutil.rmtree(src)
    return target


# --- providers ------------------------------------------------------------------------


def _mirror() -> Path:
    return CACHE / "mirror"


def _find_installed_provider(name: str, version: str) -> Path | None:
    """A provider package directory (unpacked layout) already on this machine."""
    plat = _platform()
    dirs = [os.environ.get("TF_PLUGIN_CACHE_DIR", "")] + [os.path.expanduser(d) for d in PLUGIN_SEARCH_DIRS]
    for base in filter(None, dirs):
        for host in REGISTRY_HOSTS:
            pkg = Path(base) / host / "hashicorp" / name / version / plat
            if list(pkg.glob(f"terraform-provider-{name}*")):
                return pkg
    return None


def _build_archive_provider() -> Path:
    """The project's archive_file implementation (tools/archive-provider), for machines without hashicorp/archive."""
    src = ROOT / "tools" / "archive-provider"
    key = _hash_files([p for p in src.iterdir() if p.is_file()])
    pkg = CACHE / f"archive-provider-{key}"
    binary = pkg / f"terraform-provider-archive_v{ARCHIVE_PROVIDER_VERSION}"
    if binary.exists():
        return pkg
    if not shutil.which("go"):
        raise SystemExit("hashicorp/archive is missing and there is no Go toolchain to build tools/archive-provider")
    _run_logged(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), "."],
                CACHE / "logs" / f"archive-provider-{key}.log", "archive provider build", cwd=src, env=_go_env())
    return pkg


def _link_into_mirror(name: str, version: str, pkg: Path) -> None:
    for host in REGISTRY_HOSTS:
        dest = _mirror() / host / "hashicorp" / name / version / _platform()
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            if dest.resolve() == pkg.resolve():
                continue
            dest.unlink() if dest.is_symlink() else shutil.rmtree(dest)
        dest.symlink_to(pkg.resolve(), target_is_directory=True)


def setup_providers() -> None:
    aws = _find_installed_provider("aws", AWS_PROVIDER_VERSION)
    if aws is None:
        raise SystemExit(
            f"hashicorp/aws {AWS_PROVIDER_VERSION} was not found in any plugin directory "
            f"({', '.join(PLUGIN_SEARCH_DIRS)}) and this machine cannot download it: the Go module proxy "
            "serves no v5 version of github.com/hashicorp/terraform-provider-aws. Put the provider package "
            f"(unpacked layout) under one of those directories, or set TF_PLUGIN_CACHE_DIR.")
    _say(f"hashicorp/aws {AWS_PROVIDER_VERSION}: {aws}")
    _link_into_mirror("aws", AWS_PROVIDER_VERSION, aws)
    archive = _find_installed_provider("archive", ARCHIVE_PROVIDER_VERSION) or _build_archive_provider()
    _say(f"hashicorp/archive {ARCHIVE_PROVIDER_VERSION}: {archive}")
    _link_into_mirror("archive", ARCHIVE_PROVIDER_VERSION, archive)


def cli_config() -> Path:
    """The CLI config that makes `tofu init` resolve hashicorp/* from the local mirror only."""
    path = CACHE / "tofu.tfrc"
    patterns = ", ".join(f'"{host}/hashicorp/*"' for host in REGISTRY_HOSTS)
    text = (
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{_mirror()}"\n    include = [{patterns}]\n  }}\n'
        f"  direct {{\n    exclude = [{patterns}]\n  }}\n"
        "}\n"
    )
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# --- Python environments and the Lambda layer -------------------------------------------


def _python_version(binary: str) -> str | None:
    try:
        out = subprocess.run([binary, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str = LAMBDA_PYTHON_VERSION) -> Path | None:
    """A CPython of ``version`` (the functions' declared runtime): $TAPSTACK_PYTHON, pythonX.Y on PATH,
    pyenv's versions, the usual prefixes. Resolved past pyenv's shims to the real interpreter."""
    name = f"python{version}"
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [os.environ.get("TAPSTACK_PYTHON"), shutil.which(name),
                  *sorted(glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / name)), reverse=True),
                  f"/usr/bin/{name}", f"/usr/local/bin/{name}", *sorted(glob.glob(f"/opt/*/bin/{name}"))]
    for candidate in filter(None, candidates):
        if not Path(candidate).is_file() or _python_version(candidate) != version:
            continue
        real = subprocess.run([candidate, "-c", "import sys; print(sys.executable)"], capture_output=True,
                              text=True, check=True).stdout.strip()
        return Path(real)
    return None


def harness_python() -> Path:
    """The interpreter of the harness venv, and so of the sandbox's function workers: the functions'
    declared runtime (Lambda python3.12) when the machine has it, else this python3, with a warning.

    On 3.11 two threads building ASTs at once can corrupt the AST converter's recursion counter
    (``SystemError: AST constructor recursion depth mismatch``: traceback formatting parses source
    too); 3.12 does not share that state. benchmarks/ast_race.py shows it (tests/unit/test_runtime.py
    runs it on the harness's interpreter, where it must never fail)."""
    found = find_python()
    if found is not None:
        return found
    _say(f"WARNING: no Python {LAMBDA_PYTHON_VERSION} found (PATH, pyenv, /usr, /opt; or set TAPSTACK_PYTHON): "
         f"the harness and the sandbox's functions run on {platform.python_version()}, not the declared runtime")
    return Path(sys.executable)


def _venv(requirements: Path, name: str, python: Path) -> Path:
    """The venv of ``requirements`` on ``python``, every package at the version its lock file
    (``<requirements>.lock`` beside it) pins: a fresh machine gets what was tested."""
    lock = requirements.with_suffix(".lock")
    key = _hash_files([requirements, lock])
    version = _python_version(str(python))
    if version is None:
        raise SystemExit(f"{python} does not run: set TAPSTACK_PYTHON to a working CPython {LAMBDA_PYTHON_VERSION}")
    venv = CACHE / f"{name}-py{version.replace('.', '')}-{key}"
    marker = venv / ".complete"
    if marker.exists():
        return venv
    # A venv's scripts hard-code its path, so it is built in place; the marker says it finished.
    _say(f"creating {name} venv from {requirements.name} on {python}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    _run_logged([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-r", str(requirements),
                "-c", str(lock)],
                CACHE / "logs" / f"{name}-{key}.log", f"pip install ({name})")
    marker.touch()
    return venv


def setup_venvs() -> None:
    main = _venv(ROOT / "requirements.txt", "venv", harness_python())
    checkov = _venv(ROOT / "requirements-checkov.txt", "checkov", Path(sys.executable))
    link = ROOT / ".venv"
    if (link.is_symlink() or link.exists()) and link.resolve() != main.resolve():
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    if not link.exists():
        link.symlink_to(main, target_is_directory=True)
    (CACHE / "checkov-bin").write_text(str(checkov / "bin" / "checkov"))


def build_layer(lib: Path = ROOT / "lib") -> Path:
    """<lib>/.build/layer/python: the pinned third-party packages for Lambda's Python, tap_common and
    the stack's own *_common packages."""
    requirements = lib / "layer" / "requirements.txt"
    key = _hash_files([requirements])
    site = CACHE / f"layer-{key}"
    if not site.exists():
        tmp = site.with_name(site.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _run_logged([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile",
                     "--target", str(tmp), "--platform", "manylinux2014_x86_64", "--implementation", "cp",
                     "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:", "-r", str(requirements)],
                    CACHE / "logs" / f"layer-{key}.log", "layer pip install")
        os.replace(tmp, site)
    layer = lib / ".build" / "layer" / "python"
    shutil.rmtree(layer.parent, ignore_errors=True)
    shutil.copytree(site, layer, ignore=shutil.ignore_patterns("bin", "__pycache__"))
    # tap_common (every stack's runtime library, in runtime/ beside the stacks), then the
    # stack's own *_common packages.
    for package in [SHARED_RUNTIME, *sorted((lib / "lambdas").glob("*_common"))]:
        shutil.copytree(package, layer / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return layer


# --- real Redis and PostgreSQL for handler tests and the sandbox -------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _apt_install(packages: list[str]) -> None:
    """Debian's packages the project needs and the machine lacks (root and apt-get required)."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise SystemExit(f"missing {', '.join(packages)}: install them (Debian packages) and run setup again")
    log = CACHE / "logs" / "apt.log"
    _run_logged(["apt-get", "update"], log, "apt-get update")
    _run_logged(["apt-get", "install", "-y", "--no-install-recommends", *packages], log,
                f"apt-get install {' '.join(packages)}", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def setup_servers() -> None:
    """redis-server and PostgreSQL from Debian's packages, installed when missing."""
    missing = [pkg for pkg, present in (("redis-server", shutil.which("redis-server")),
                                         ("postgresql", _postgres_bin())) if not present]
    if not missing:
        return
    _apt_install(missing)
    # Debian starts the services it installs; the project runs its own instances on free ports.
    for service in ("redis-server", "postgresql"):
        if shutil.which("service"):
            subprocess.run(["service", service, "stop"], capture_output=True, check=False)


# --- Gremlin Server, the sandbox's Neptune -------------------------------------------------

GREMLIN_SOURCE = ROOT / "tools" / "gremlin-server"


def gremlin_lib() -> Path:
    """The directory of Gremlin Server's jars for the pom in ``tools/gremlin-server`` (by its hash)."""
    return CACHE / f"gremlin-server-{_hash_files([GREMLIN_SOURCE / 'pom.xml'])}" / "lib"


def setup_gremlin() -> None:
    """Gremlin Server's jars, resolved by Maven from the pom once (Java and Maven from Debian's
    packages when missing); the sandbox starts it when a stack has a Neptune cluster."""
    lib = gremlin_lib()
    if (lib.parent / "complete").exists():
        return
    missing = [pkg for pkg, present in (("openjdk-17-jre-headless", shutil.which("java")),
                                         ("maven", shutil.which("mvn"))) if not present]
    if missing:
        _apt_install(missing)
    shutil.rmtree(lib.parent, ignore_errors=True)
    _run_logged(["mvn", "-B", "-q", "-f", str(GREMLIN_SOURCE / "pom.xml"), "dependency:copy-dependencies",
                 f"-DoutputDirectory={lib}", "-DincludeScope=runtime"], CACHE / "logs" / "gremlin-server.log",
                "mvn dependency:copy-dependencies (Gremlin Server)")
    (lib.parent / "complete").write_text(f"{len(list(lib.glob('*.jar')))} jars\n")
    _say(f"Gremlin Server: {lib}")


# --- entry points ---------------------------------------------------------------------


def environment() -> dict[str, str]:
    """Variables that make `tofu` use this toolchain; raises if setup has not run."""
    tofu = find_tofu() or _find_terraform()
    config = CACHE / "tofu.tfrc"
    if tofu is None or not config.exists():
        raise SystemExit("the toolchain is not set up: run `make setup`")
    return {"TOFU_BIN": str(tofu), "TF_CLI_CONFIG_FILE": str(config), "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1"}


def setup() -> None:
    start = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    tofu = find_tofu()
    if tofu is None:
        tofu = _build_tofu() if shutil.which("go") or not _find_terraform() else _find_terraform()
    _say(f"tofu: {tofu}")
    setup_providers()
    cli_config()
    setup_servers()
    setup_gremlin()
    setup_venvs()
    for lib in [ROOT / "lib", *sorted(p.parent.parent for p in ROOT.glob("stacks/*/lib/layer/requirements.txt"))]:
        build_layer(lib)
    _say(f"setup complete in {time.monotonic() - start:.0f}s")


def main(argv: list[str]) -> None:
    command = argv[0] if argv else "setup"
    if command == "setup":
        setup()
    elif command == "env":
        for key, value in environment().items():
            print(f"export {key}={json.dumps(value)}")
    elif command == "layer":
        build_layer()
    else:
        raise SystemExit(f"usage: toolchain.py [setup|env|layer], not {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
