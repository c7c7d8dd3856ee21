#!/usr/bin/env python3
"""A versions folder with many versions, for timing list / verify / prune (issue 20, item 5).

    python3 bench/bigfolder.py DIR N [--no-files]

Writes DIR/manifest.jsonl with N saved versions of job.gbw (one line each, in the format the
daemon writes) and, unless --no-files, the N version files job.000001.gbw... (a few bytes each,
their sha256 in the manifest, so verify passes). With --no-files, every 1000th version also gets
a later line (status "pruned", as prune writes it): list must show that one, at the first's place.
"""
import hashlib, json, os, sys

def main():
    d, n = sys.argv[1], int(sys.argv[2])
    files = "--no-files" not in sys.argv
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "manifest.jsonl"), "w") as m:
        for i in range(1, n + 1):
            name = "job.%06d.gbw" % i
            body = ("version %d\n" % i).encode()
            if files:
                with open(os.path.join(d, name), "wb") as f:
                    f.write(body)
            t = "2026-01-01T%02d:%02d:%02d.%03dZ" % (i // 3600000 % 24, i // 60000 % 60, i // 1000 % 60, i % 1000)
            line = {"v": 1, "version": i, "file": "job.gbw", "path": name, "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(), "time": t, "pid": 4242,
                    "cmdline": "./solver --input job.in", "reason": "close", "status": "saved"}
            m.write(json.dumps(line, separators=(",", ":")) + "\n")
        for i in range(1000, n + 1, 1000) if not files else ():
            line = {"v": 1, "version": i, "file": "job.gbw", "size": 10, "time": "2026-02-01T00:00:00.000Z",
                    "status": "pruned", "pruned": "not kept by --keep-last 1"}
            m.write(json.dumps(line, separators=(",", ":")) + "\n")
    print(d, n, "versions", "with files" if files else "(manifest only)")

if __name__ == "__main__":
    main()
