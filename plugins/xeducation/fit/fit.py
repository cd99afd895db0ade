"""Fit the X Education scorecard and write it as Rust constants.

Model: every feature is encoded as its smoothed weight of evidence (WoE, the log-odds
shift of a category or numeric bin relative to the base rate); a logistic regression on
those WoE columns then learns one weight per feature, which corrects for features that
repeat each other. A category's points are weight x WoE, so a lead's log-odds are
intercept + sum of points, and the plugin's score is 100 x sigmoid(log-odds).

Usage (from the repository root):
    python3 plugins/xeducation/fit/fit.py [--csv tests/data/leads-xeducation.csv]
        [--out plugins/xeducation/src/table.rs]

Prints the ROC AUC on the full file, on a 70/30 holdout and in 5-fold cross-validation
(the holdout and the folds refit WoE and weights on the training part only).
"""

import argparse

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

LABEL = "Converted"
# Pseudo-count pulling rare categories toward the base rate.
SMOOTHING = 20.0
# Inverse L2 strength of the logistic regression (as sklearn's C: smaller is stronger).
C = 0.5

# (column, factor group). Numeric columns carry their bin edges (a bin is edge <= v < next).
CATEGORICAL = [
    ("Lead Origin", "source"),
    ("Lead Source", "source"),
    ("How did you hear about X Education", "source"),
    ("Country", "source"),
    ("City", "source"),
    ("Last Activity", "engagement"),
    ("Last Notable Activity", "engagement"),
    ("Asymmetrique Activity Index", "engagement"),
    ("Asymmetrique Activity Score", "engagement"),
    ("A free copy of Mastering The Interview", "engagement"),
    ("What is your current occupation", "profile"),
    ("Specialization", "profile"),
    ("What matters most to you in choosing a course", "profile"),
    ("Lead Profile", "profile"),
    ("Asymmetrique Profile Index", "profile"),
    ("Asymmetrique Profile Score", "profile"),
    ("Tags", "intent"),
    ("Lead Quality", "intent"),
    ("Do Not Email", "intent"),
    ("Do Not Call", "intent"),
    ("Through Recommendations", "intent"),
]
NUMERIC = [
    ("TotalVisits", "engagement", [0, 1, 2, 3, 4, 5, 7, 10, 15]),
    ("Total Time Spent on Website", "engagement",
     [0, 1, 60, 180, 300, 500, 750, 1000, 1250, 1500, 1800]),
    ("Page Views Per Visit", "engagement", [0, 1, 1.5, 2, 2.5, 3, 4, 5, 7]),
]
# Sales-team annotations written after contact: reported separately because a CRM may
# not have them when a lead is first scored.
SALES_NOTES = {"Tags", "Lead Quality"}

MISSING = "\0missing"


def clean(df):
    """Category keys as the plugin sees them: trimmed, with "" and "Select" = missing."""
    out = {}
    for col, _ in CATEGORICAL:
        v = df[col].fillna("").astype(str).str.strip()
        out[col] = v.where((v != "") & (v != "Select"), MISSING)
    for col, _, edges in NUMERIC:
        v = pd.to_numeric(df[col].astype(str).str.strip(), errors="coerce")
        b = np.searchsorted(np.array(edges, dtype=float), v.to_numpy(), side="right") - 1
        b = np.where(np.isnan(v.to_numpy()), -2, np.maximum(b, 0))
        out[col] = pd.Series(b, index=df.index).map(lambda i: MISSING if i == -2 else int(i))
    return pd.DataFrame(out)


def woe_tables(x, y):
    """Per column: {key: smoothed WoE}. Unseen keys score 0 (the base rate)."""
    p0 = y.mean()
    base = np.log(p0 / (1 - p0))
    tables = {}
    for col in x.columns:
        g = y.groupby(x[col]).agg(["sum", "count"])
        pos = g["sum"] + SMOOTHING * p0
        neg = g["count"] - g["sum"] + SMOOTHING * (1 - p0)
        tables[col] = (np.log(pos / neg) - base).to_dict()
    return tables


def encode(x, tables):
    return np.column_stack([x[c].map(tables[c]).fillna(0.0).to_numpy() for c in x.columns])


def fit(x, y):
    """WoE tables, one non-negative weight per column, and the intercept.

    The weights are an L2-penalised logistic regression constrained to be >= 0: without
    the bound, collinear columns flip sign and a good value would cost points. A column
    whose weight ends at 0 is left out of the table.
    """
    tables = woe_tables(x, y)
    z = encode(x, tables)
    t = y.to_numpy(dtype=float)

    def loss(params):
        b, w = params[0], params[1:]
        m = b + z @ w
        p = 1.0 / (1.0 + np.exp(-m))
        nll = np.sum(np.logaddexp(0.0, m) - t * m) + 0.5 / C * w @ w
        grad = np.concatenate([[np.sum(p - t)], z.T @ (p - t) + w / C])
        return nll, grad

    start = np.concatenate([[0.0], np.full(z.shape[1], 0.5)])
    bounds = [(None, None)] + [(0.0, None)] * z.shape[1]
    res = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    weights = dict(zip(x.columns, np.where(res.x[1:] < 1e-4, 0.0, res.x[1:])))
    return tables, weights, res.x[0]


def score(model, x):
    tables, weights, intercept = model
    return intercept + encode(x, tables) @ np.array([weights[c] for c in x.columns])


def evaluate(x, y, label):
    full = roc_auc_score(y, score(fit(x, y), x))
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=7)
    holdout = roc_auc_score(yte, score(fit(xtr, ytr), xte))
    folds = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=7).split(x, y):
        m = fit(x.iloc[tr], y.iloc[tr])
        folds.append(roc_auc_score(y.iloc[te], score(m, x.iloc[te])))
    print(f"{label}: AUC full={full:.4f} holdout70/30={holdout:.4f} "
          f"5-fold={np.mean(folds):.4f}±{np.std(folds):.4f}")


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_rust(model, columns, out, auc):
    tables, weight, intercept = model
    lines = [
        "//! Generated by `fit/fit.py` from tests/data/leads-xeducation.csv: do not edit.",
        f"//! In-sample ROC AUC of this table: {auc:.4f}.",
        "",
        "use crate::model::{Feature, Group, Kind};",
        "",
        "/// Log-odds of a lead with every feature at the base rate.",
        f"pub const INTERCEPT: f64 = {intercept:.6f};",
        "",
        "/// Every feature's points: learned weight x smoothed weight of evidence.",
        "pub const FEATURES: &[Feature] = &[",
    ]
    groups = {c: g for c, g in CATEGORICAL} | {c: g for c, g, _ in NUMERIC}
    edges_of = {c: e for c, _, e in NUMERIC}
    for col in (c for c in columns if weight[c] > 0):
        pts = {k: weight[col] * v for k, v in tables[col].items()}
        missing = pts.get(MISSING, 0.0)
        lines.append("    Feature {")
        lines.append(f"        column: {rust_str(col)},")
        lines.append(f"        group: Group::{groups[col].capitalize()},")
        if col in edges_of:
            edges = edges_of[col]
            bins = [pts.get(i, 0.0) for i in range(len(edges))]
            lines.append("        kind: Kind::Numeric {")
            lines.append(f"            edges: &[{', '.join(f'{float(e):.1f}' for e in edges)}],")
            lines.append(f"            points: &[{', '.join(f'{p:.4f}' for p in bins)}],")
        else:
            lines.append("        kind: Kind::Categorical {")
            lines.append("            levels: &[")
            for k in sorted(k for k in pts if k != MISSING):
                lines.append(f"                ({rust_str(k)}, {pts[k]:.4f}),")
            lines.append("            ],")
        lines.append(f"            missing: {missing:.4f},")
        lines.append("        },")
        lines.append("    },")
    lines.append("];")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default="tests/data/leads-xeducation.csv")
    ap.add_argument("--out", default="plugins/xeducation/src/table.rs")
    args = ap.parse_args()

    df = pd.read_csv(args.csv, dtype=str, keep_default_na=False)
    y = df[LABEL].astype(int)
    x = clean(df)
    evaluate(x, y, "all features")
    evaluate(x.drop(columns=list(SALES_NOTES)), y, "without Tags/Lead Quality")

    model = fit(x, y)
    auc = roc_auc_score(y, score(model, x))
    print("left out (weight 0):", [c for c, w in model[1].items() if w <= 0])
    write_rust(model, list(x.columns), args.out, auc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
