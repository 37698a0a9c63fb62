#!/usr/bin/env python3
"""Builds small real Python distributions for relua's tests (reproducible bytes).

usage: pypi_wheel.py --out DIR [--sdist] [--salt TEXT] [--payload BYTES] NAME VERSION [NAME VERSION ...]
Prints the path of each distribution built, one a line. --salt changes the bytes (a
"rebuilt" artifact of the same version); --payload adds a stored file of that many zero
bytes, written as a hole so a 1 GB wheel costs no disk.
"""
import argparse
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

STAMP = (2024, 1, 1, 0, 0, 0)


class SparseFile(io.FileIO):
    """A file where writes of zero bytes become holes."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.high = 0

    def write(self, b):
        n = len(b)
        if n >= 4096 and bytes(b).count(0) == n:
            self.seek(n, os.SEEK_CUR)
        else:
            super().write(b)
        self.high = max(self.high, self.tell())
        return n

    def close(self):
        if not self.closed:
            self.truncate(max(self.high, self.tell()))
        super().close()


def metadata(name, version, salt):
    summary = "relua test package" + (" " + salt if salt else "")
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n"
            "Requires-Python: >=3.7\n\n" % (name, version, summary)).encode()


def wheel(out, name, version, salt, payload):
    dist = re.sub(r"[-_.]+", "_", name)
    pkg = dist.lower()
    path = os.path.join(out, "%s-%s-py3-none-any.whl" % (dist, version))
    info = "%s-%s.dist-info" % (dist, version)
    files = [
        ("%s/__init__.py" % pkg, ("__version__ = %r\n# %s\n" % (version, salt or "")).encode()),
        ("%s/METADATA" % info, metadata(name, version, salt)),
        ("%s/WHEEL" % info, b"Wheel-Version: 1.0\nGenerator: relua-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = []
    with SparseFile(path, "w") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in files:
            zi = zipfile.ZipInfo(arc, STAMP)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (arc, digest, len(data)))
        if payload:
            zi = zipfile.ZipInfo("%s/blob.bin" % pkg, STAMP)
            zi.compress_type = zipfile.ZIP_STORED
            zi.file_size = payload
            zeros = bytes(1 << 20)
            with zf.open(zi, "w", force_zip64=payload > (1 << 31)) as w:
                left = payload
                while left > 0:
                    n = min(left, len(zeros))
                    w.write(zeros if n == len(zeros) else zeros[:n])
                    left -= n
            record.append("%s/blob.bin,," % pkg)
        record.append("%s/RECORD,," % info)
        zi = zipfile.ZipInfo("%s/RECORD" % info, STAMP)
        zf.writestr(zi, "\n".join(record) + "\n")
    return path


def sdist(out, name, version, salt):
    stem = "%s-%s" % (re.sub(r"[-_.]+", "_", name).lower(), version)
    path = os.path.join(out, stem + ".tar.gz")
    entries = [
        ("%s/PKG-INFO" % stem, metadata(name, version, salt)),
        ("%s/setup.py" % stem, b"from setuptools import setup\nsetup()\n"),
        ("%s/pyproject.toml" % stem, ('[project]\nname = "%s"\nversion = "%s"\n' % (name, version)).encode()),
    ]
    import gzip
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
                for arc, data in entries:
                    ti = tarfile.TarInfo(arc)
                    ti.size, ti.mtime, ti.mode = len(data), 1704067200, 0o644
                    tf.addfile(ti, io.BytesIO(data))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--sdist", action="store_true")
    ap.add_argument("--salt", default="")
    ap.add_argument("--payload", type=int, default=0)
    ap.add_argument("pairs", nargs="+")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give NAME VERSION pairs")
    os.makedirs(a.out, exist_ok=True)
    for i in range(0, len(a.pairs), 2):
        name, version = a.pairs[i], a.pairs[i + 1]
        if a.sdist:
            print(sdist(a.out, name, version, a.salt))
        else:
            print(wheel(a.out, name, version, a.salt, a.payload))


if __name__ == "__main__":
    main()
