#!/usr/bin/env python3
"""CPU per relayed packet vs concurrent calls, one line per configuration.

usage: python3 plot.py results.json out.png
(results.json: `rtpengine-bench --json results.json`; needs python3-matplotlib)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    series = {}
    for s in data["summary"]:
        v = s.get("forward_ns_per_pkt")
        if v is None:
            continue
        series.setdefault(s["daemon"], []).append((s["calls"], v))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("concurrent calls")
    ax.set_ylabel("CPU ns per relayed packet (proxy − direct)")
    ax.set_title(data.get("machine", ""), fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=120)


if __name__ == "__main__":
    main()
