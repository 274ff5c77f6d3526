# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""The bundle's manifest (playbooks/bundle.yml writes it, roles/bundle_server verifies it).

Standard library only, no ansible import. ``manifest.json`` lists every file of the bundle
directory with its size and sha256, and the bundle's total; ``verify`` reads a bundle
directory against it on the receiving side, BEFORE anything in it is used, and names every
file that is missing, differs (tampered or damaged in transit) or is not in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
# Not part of the bundle's content: the manifest itself, its signature, and the builder's
# working state (apt's isolated lists, the signing keyring).
SKIP_FILES = (MANIFEST, MANIFEST + ".asc")
SKIP_DIRS = (".apt-work", ".gnupg", ".work")


def sha256_file(path, chunk=1 << 20):
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def walk(root):
    """Every file under ``root``: relative POSIX paths, sorted; the manifest, its signature
    and the builder's working directories left out."""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            rel = os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")
            if rel not in SKIP_FILES:
                found.append(rel)
    return sorted(found)


def kind_of(path):
    """What a bundle file is, from where it lies."""
    top = path.split("/", 1)[0]
    return {"apt": "package", "dnf": "package", "images": "image", "files": "file"}.get(top, "other")


def build(root, metadata=None):
    """The manifest of the bundle directory ``root``: {"schema_version", "kind", "metadata",
    "files": [{"path", "size", "sha256", "kind"}], "count", "total_bytes", "by_kind"}."""
    entries = []
    for rel in walk(root):
        full = os.path.join(root, rel)
        entries.append({"path": rel, "size": os.path.getsize(full), "sha256": sha256_file(full), "kind": kind_of(rel)})
    by_kind = {}
    for entry in entries:
        item = by_kind.setdefault(entry["kind"], {"count": 0, "bytes": 0})
        item["count"] += 1
        item["bytes"] += entry["size"]
    return {"schema_version": SCHEMA_VERSION, "kind": "kubegpu-bundle", "metadata": metadata or {},
            "files": entries, "count": len(entries), "total_bytes": sum(e["size"] for e in entries),
            "by_kind": by_kind}


def dumps(manifest):
    """The manifest as written: sorted keys, two-space indent, a final newline."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def verify(root, manifest):
    """Problems of a bundle directory against its manifest: [] when every listed file is
    there with its size and sha256 and nothing else is."""
    problems = []
    if not isinstance(manifest, dict) or manifest.get("kind") != "kubegpu-bundle" or not isinstance(
            manifest.get("files"), list):
        return ["%s is not a kubegpu bundle manifest" % MANIFEST]
    listed = set()
    for entry in manifest["files"]:
        rel = str(entry.get("path") or "")
        listed.add(rel)
        full = os.path.join(root, rel)
        if rel.startswith("/") or ".." in rel.split("/"):
            problems.append("%s: a path outside the bundle" % rel)
        elif not os.path.isfile(full):
            problems.append("%s: missing" % rel)
        elif os.path.getsize(full) != entry.get("size"):
            problems.append("%s: %d bytes, the manifest says %s (tampered or damaged)" % (
                rel, os.path.getsize(full), entry.get("size")))
        elif sha256_file(full) != entry.get("sha256"):
            problems.append("%s: sha256 differs from the manifest (tampered or damaged)" % rel)
    for rel in walk(root):
        if rel not in listed:
            problems.append("%s: not in the manifest" % rel)
    return problems
