#!/usr/bin/env python3
"""Fetch Debian packages for test fixtures, verified like apt does, cached.

    debfetch.py --suite bookworm --arch armhf --cache DIR PACKAGE...

Prints the path of each verified .deb, one per line. The mirror is the first
`URIs:` of the host's deb822 apt sources (or CARGO_FOR_ARM_MIRROR). The
InRelease signature is checked with gpgv against the Debian archive keyring,
the Packages index against InRelease, and every .deb against Packages. A
second run with the same arguments downloads nothing.
"""
import argparse, glob, hashlib, lzma, os, re, subprocess, sys, tempfile, urllib.request

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def mirror():
    if os.environ.get("CARGO_FOR_ARM_MIRROR"):
        return os.environ["CARGO_FOR_ARM_MIRROR"].rstrip("/")
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in open(path):
            m = re.match(r"URIs:\s*(\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1).rstrip("/")
    if os.path.exists("/etc/apt/sources.list"):
        for line in open("/etc/apt/sources.list"):
            m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s", line)
            if m:
                return m.group(1).rstrip("/")
    sys.exit("debfetch: no Debian mirror in the apt sources; set CARGO_FOR_ARM_MIRROR")


def get(url, dest):
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            f.write(chunk)
    os.replace(tmp, dest)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--print-mirror", action="store_true", help="print the mirror and exit")
    ap.add_argument("--suite")
    ap.add_argument("--arch")
    ap.add_argument("--cache")
    ap.add_argument("packages", nargs="*")
    a = ap.parse_args()
    if a.print_mirror:
        print(mirror())
        return
    if not (a.suite and a.arch and a.cache and a.packages):
        ap.error("--suite, --arch, --cache and at least one package are required")
    os.makedirs(a.cache, exist_ok=True)
    base = mirror()
    want = set(a.packages)
    # The .debs themselves are the cache: a hit on every name needs no index.
    found = {}
    for name in want:
        hits = glob.glob(os.path.join(a.cache, f"{name}_*_{a.arch}.deb")) + glob.glob(
            os.path.join(a.cache, f"{name}_*_all.deb"))
        if hits:
            found[name] = sorted(hits)[-1]
    if len(found) < len(want):
        with tempfile.TemporaryDirectory() as tmp:
            inrel = os.path.join(tmp, "InRelease")
            get(f"{base}/dists/{a.suite}/InRelease", inrel)
            verified = os.path.join(tmp, "Release")
            subprocess.run(["gpgv", "--keyring", KEYRING, "--output", verified, inrel],
                           check=True, stderr=subprocess.DEVNULL)
            rel = open(verified).read()
            sums = rel.split("SHA256:", 1)[1]
            idx = f"main/binary-{a.arch}/Packages.xz"
            m = re.search(r"^\s+([0-9a-f]{64})\s+\d+\s+" + re.escape(idx) + "$", sums, re.M)
            if not m:
                sys.exit(f"debfetch: {idx} not listed in {a.suite} InRelease")
            pk = os.path.join(tmp, "Packages.xz")
            get(f"{base}/dists/{a.suite}/{idx}", pk)
            if sha256(pk) != m.group(1):
                sys.exit(f"debfetch: {a.suite}/{idx} does not match its InRelease "
                         "(the mirror serves a stale index); try another suite")
            stanzas = lzma.open(pk).read().decode().split("\n\n")
            for st in stanzas:
                fields = dict(re.findall(r"^([A-Za-z0-9-]+):\s*(.*)$", st, re.M))
                name = fields.get("Package")
                if name in want and name not in found:
                    dest = os.path.join(a.cache, os.path.basename(fields["Filename"]))
                    get(f"{base}/{fields['Filename']}", dest)
                    if sha256(dest) != fields["SHA256"]:
                        os.unlink(dest)
                        sys.exit(f"debfetch: {dest} does not match its Packages hash")
                    found[name] = dest
    missing = want - set(found)
    if missing:
        sys.exit(f"debfetch: not in {a.suite}/{a.arch}: {' '.join(sorted(missing))}")
    for name in a.packages:
        print(found[name])


if __name__ == "__main__":
    main()
