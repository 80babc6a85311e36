"""What a trained model gets right: test errors, per class, and the bias correction of a
student whose transfer set lacked some classes."""

import numpy as np

from .errors import UserError


MAX_CONFUSION = 1000  # classes up to which evaluate() builds the confusion matrix (8 MB of int64)


def check_evaluation_data(sizes, n_features, labels, model="the model", data="the data"):
    """Refuse, in one line, to evaluate a model of layer widths ``sizes`` on ``n_features``
    features and the (host) ``labels``: their counts must fit the model's input and outputs."""
    if n_features != sizes[0]:
        raise UserError(f"{model} takes {sizes[0]} inputs but {data} has {n_features} features: "
                        "evaluate it on the kind of data it was trained on")
    top = int(labels.max()) if labels.size else 0
    low = int(labels.min()) if labels.size else 0
    if low < 0 or top >= sizes[-1]:
        raise UserError(f"{model} has {sizes[-1]} outputs (classes 0 to {sizes[-1] - 1}) but {data} "
                        f"has test label {low if low < 0 else top}: evaluate it on the kind of data it "
                        "was trained on")


def evaluate(net, data):
    """Test errors, per-class errors and the confusion matrix (rows: true class; None above
    :data:`MAX_CONFUSION` classes)."""
    be = net.backend
    y = be.to_host(data["y_test"])
    check_evaluation_data(net.sizes, int(data["x_test"].shape[1]), y)
    z = net.predict_logits(data["x_test"])
    pred = be.to_host(z.argmax(axis=1))
    C = net.sizes[-1]
    per_class = np.bincount(y[pred != y], minlength=C)
    confusion = None
    if C <= MAX_CONFUSION:
        confusion = np.zeros((C, C), dtype=np.int64)
        np.add.at(confusion, (y, pred), 1)
        confusion = confusion.tolist()
    return {"errors": int((pred != y).sum()), "n": int(y.size), "per_class_errors": per_class.tolist(),
            "confusion": confusion}


# Hinton et al. 2015, section 3: a student whose transfer set lacks some classes, then
# the same student with a constant added to the logits (output biases) of those classes.
# Lowering the biases of the classes present is the same as raising those of the absent ones.
PAPER_CORRECTION = {
    (3,): {"offset": 3.5, "before": "206 (133 on 3s)", "after": "109 (14 on 3s)"},
    (0, 1, 2, 3, 4, 5, 6, 9): {"offset": 7.6, "before": "47.3%", "after": "13.2%"},  # only 7s and 8s
}
CORRECTIONS = np.round(np.arange(0.0, 20.0001, 0.1), 1)  # candidate logit offsets


def _errors_after_correction(z, y, absent, offset):
    """(errors, errors on the absent classes) with ``offset`` added to their logits."""
    z = z.copy()
    z[:, absent] += offset
    wrong = z.argmax(axis=1) != y
    return int(wrong.sum()), int((wrong & np.isin(y, absent)).sum())


def bias_correction(net, data, absent, paper=True):
    """Test errors of ``net`` before and after raising the output biases of the ``absent``
    classes: by the paper's amount, by the amount with the fewest errors on the validation
    split (``data["x_val"]``: chosen without the test set), and, for reference only, by the
    amount that is best on the test set itself.  ``paper``: the data is MNIST, where the
    paper's amounts and figures apply."""
    be = net.backend

    def logits(x, y):
        return be.to_host(net.predict_logits(data[x])).astype(np.float64), be.to_host(data[y])

    zt, yt = logits("x_test", "y_test")

    def on_test(offset, **extra):
        errors, on_absent = _errors_after_correction(zt, yt, absent, offset)
        return dict(offset=float(offset), test_errors=errors, test_errors_on_absent=on_absent, **extra)

    out = {"absent_classes": list(absent), "n_test": int(yt.size),
           "n_test_absent": int(np.isin(yt, absent).sum()), "before": on_test(0.0)}
    paper = PAPER_CORRECTION.get(tuple(absent)) if paper else None
    if paper:
        out["paper"] = on_test(paper["offset"], paper_before=paper["before"], paper_after=paper["after"])
    if "x_val" in data:
        zv, yv = logits("x_val", "y_val")
        errs = np.array([_errors_after_correction(zv, yv, absent, s)[0] for s in CORRECTIONS])
        best = CORRECTIONS[errs == errs.min()]
        out["chosen"] = on_test(best[len(best) // 2], validation_errors=int(errs.min()),
                                n_validation=int(yv.size))
    test_errs = np.array([_errors_after_correction(zt, yt, absent, s)[0] for s in CORRECTIONS])
    out["best_on_test"] = on_test(CORRECTIONS[int(test_errs.argmin())])
    return out
