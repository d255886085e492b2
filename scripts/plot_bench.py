#!/usr/bin/env python3
"""Turns criterion's results (target/criterion) into ratios: a Markdown table written into
BENCHMARKS.md between the `ratios:start` / `ratios:end` markers, and a plot (docs/bench.png).

Every group is reported relative to its reference (the floor where there is one); criterion's
median point estimate is used, as the machine is shared and noisy. Run by scripts/bench.sh;
it needs matplotlib only for the plot (`--no-plot` skips it).

    python scripts/plot_bench.py [--criterion DIR] [--markdown BENCHMARKS.md] [--png docs/bench.png]
"""

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# group id -> (title, reference function id, {function id: (comparison, bound)})
# comparison "le": the time ratio must be <= bound; "ge_speed": speed (1/ratio) >= bound.
GROUPS = {
    "acquire_ndarray_f64": (
        "1. acquire+release, 1-D float64 ndarray (× raw CPython)",
        "raw_cpython",
        {"pybuf_Buffer1": ("le", 1.2), "pybuf_AnyBuffer": ("le", 1.2)},
    ),
    "acquire_bytes": (
        "1. acquire+release, bytes (× raw CPython)",
        "raw_cpython",
        {"pybuf_Buffer1": ("le", 1.2), "pybuf_AnyBuffer": ("le", 1.2)},
    ),
    "borrow_none_live": ("2. borrow+release, no other borrows (× rust-numpy readonly)", "numpy_readonly", {}),
    "borrow_1000_live_other": (
        "2. borrow+release, 1,000 live borrows of other arrays (× rust-numpy readonly)",
        "numpy_readonly",
        {},
    ),
    "borrow_1000_live_same": (
        "2. borrow+release, 1,000 live borrows of the same array (× rust-numpy readonly)",
        "numpy_readonly",
        {},
    ),
    "sum_1e7_f64": (
        "3. sum of 10^7 contiguous f64 (× raw slice)",
        "raw_slice",
        {"pybuf_read_as_slice": ("ge_speed", 0.95)},
    ),
    "copy_transposed_2048": (
        "4. copy-out, transposed 2048² f64 (× memcpy into a new Vec)",
        "memcpy",
        {"pybuf_to_vec": ("le", 1.5)},
    ),
    "drop_100k_detached": ("5. drop 100,000 buffers on a detached thread (× pybuf)", "pybuf", {}),
    "drop_100k_attached": ("5. drop 100,000 buffers while attached (× raw CPython)", "raw_cpython", {}),
    "per_element_c": ("6. sum 10^6 f64 per element, C order (× raw pointer loop)", "raw_ptr_loop", {}),
    "per_element_f": ("6. sum 10^6 f64 per element, F order (× raw pointer loop)", "raw_ptr_loop", {}),
    "per_element_strided": (
        "6. sum 10^6 f64 per element, strided [::2, ::2] (× raw pointer loop)",
        "raw_ptr_loop",
        {},
    ),
}


def load(criterion_dir):
    """{group: {function: median ns}} from criterion's `new` estimates."""
    results = {}
    for bench in criterion_dir.glob("*/*/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        group, function = meta["group_id"], meta["function_id"]
        if function is None:
            continue
        results.setdefault(group, {})[function] = estimates["median"]["point_estimate"]
    return results


def ratios(results):
    """Rows (group, title, function, ratio, target text, verdict) in GROUPS order."""
    rows = []
    for group, (title, reference, targets) in GROUPS.items():
        times = results.get(group)
        if not times or reference not in times:
            continue
        for function, ns in sorted(times.items(), key=lambda kv: kv[1]):
            ratio = ns / times[reference]
            target, verdict = "", ""
            if function in targets:
                kind, bound = targets[function]
                if kind == "le":
                    target = f"≤ {bound:g}×"
                    met = ratio <= bound
                    verdict = "met" if met else f"missed by {ratio / bound:.2f}×"
                else:
                    speed = 1 / ratio
                    target = f"≥ {bound:g}× speed"
                    met = speed >= bound
                    verdict = f"met ({speed:.2f}× speed)" if met else f"missed ({speed:.2f}× speed)"
            rows.append((group, title, function, ratio, target, verdict))
    return rows


def markdown(rows):
    lines = []
    current = None
    for group, title, function, ratio, target, verdict in rows:
        if group != current:
            if current is not None:
                lines.append("")
            lines += [f"**{title}**", "", "| variant | ratio | target | verdict |", "|---|---:|---|---|"]
            current = group
        lines.append(f"| `{function}` | {ratio:.2f} | {target} | {verdict} |")
    return "\n".join(lines) + "\n"


def write_markdown(path, table):
    text = path.read_text()
    start, end = "<!-- ratios:start -->", "<!-- ratios:end -->"
    if start not in text or end not in text:
        sys.exit(f"{path}: missing the {start} / {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{table}{end}{tail}")


def plot(rows, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = []
    for row in rows:
        if row[0] not in groups:
            groups.append(row[0])
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 1.0 + 0.42 * len(rows) + 0.5 * len(groups)),
                             gridspec_kw={"height_ratios": [sum(r[0] == g for r in rows) + 1 for g in groups]})
    if len(groups) == 1:
        axes = [axes]
    for ax, group in zip(axes, groups):
        mine = [r for r in rows if r[0] == group]
        names = [r[2] for r in mine]
        values = [r[3] for r in mine]
        colors = ["tab:orange" if n.startswith("pybuf") else "tab:gray" if n in ("raw_cpython", "raw_slice", "memcpy", "raw_ptr_loop") else "tab:blue" for n in names]
        ax.barh(names, values, color=colors)
        ax.axvline(1.0, color="black", linewidth=0.8)
        for name, (kind, bound) in GROUPS[group][2].items():
            ax.axvline(bound if kind == "le" else 1 / bound, color="tab:red", linestyle="--", linewidth=0.8)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}×", va="center", fontsize=7)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(GROUPS[group][0], fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.set_xlim(left=min(min(values), 1.0) / 1.5, right=max(values) * 3)
    fig.suptitle("pybuf benchmarks: time ratios (lower is better; red dashes = target)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--criterion", type=pathlib.Path, default=ROOT / "target" / "criterion")
    parser.add_argument("--markdown", type=pathlib.Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--png", type=pathlib.Path, default=ROOT / "docs" / "bench.png")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    rows = ratios(load(args.criterion))
    if not rows:
        sys.exit(f"no criterion results under {args.criterion}; run scripts/bench.sh first")
    table = markdown(rows)
    print(table)
    write_markdown(args.markdown, table)
    if not args.no_plot:
        plot(rows, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
