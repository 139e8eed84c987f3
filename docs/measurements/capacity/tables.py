import json, glob, os
rules = ["hebbian", "storkey", "storkey_reference", "pseudoinverse", "covariance", "modern"]
kinds = [("unbiased", "unbiased (P(+1) = 0.5)"), ("p0.1", "biased, P(+1) = 0.1"), ("corr0.3", "correlated, correlation 0.3 (P(+1) = 0.5)")]
out = []
for dim in (256, 1024):
    for kind, title in kinds:
        rows = []
        loads = None
        meta = ""
        for rule in rules:
            path = f"/tmp/cap/{rule}_{dim}_{kind}.json"
            if not os.path.exists(path):
                continue
            data = json.load(open(path))
            if loads is None:
                loads = [p["patterns"] for p in data["points"]]
                meta = f"trials {data['trials']}, noise {data['noise']}, measured correlation {data['measured_correlation']:.3f}"
            cells = [f"{p['exact_recall_fraction']:.2f}/{p['fixed_point_fraction']:.2f}/{p['mean_overlap']:.2f}" for p in data["points"]]
            label = rule + (f" ({data['backend']}, kwta {data['kwta']})" if data["kwta"] else f" ({data['backend']})")
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
        if loads is None:
            continue
        out.append(f"\n#### d = {dim}, {title} — {meta}\n")
        out.append("cells: exact recall / fixed-point fraction / mean overlap\n")
        out.append("| rule \\ K (load) | " + " | ".join(f"{k} ({k/dim:.3f})" for k in loads) + " |")
        out.append("|---|" + "---|" * len(loads))
        out.extend(rows)
print("\n".join(out))
