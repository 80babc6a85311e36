"""The scikit-learn estimators: scikit-learn's own checks, a grid search over the temperature,
every kind of teacher, training in memory."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from nnkd import example_data  # noqa: E402
from nnkd.estimators import DistilledClassifier, NNKDClassifier  # noqa: E402

# The checks these estimators skip, and why (docs/usage.md lists them too).
SKIPPED = {
    "check_array_api_input": "runs only with SCIPY_ARRAY_API=1; nnkd takes NumPy (or CuPy) arrays, "
                             "not any array-API namespace",
    "check_classifier_data_not_an_array": "runs only where pandas is installed",
}


def digits():
    """The shipped 8x8 digits as rows of features in [0, 1]: train and test parts."""
    d = np.load(example_data())
    def rows(x):
        return x.reshape(len(x), -1) / 255.0
    return rows(d["x_train"]), d["y_train"].astype(np.int64), rows(d["x_test"]), d["y_test"].astype(np.int64)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("estimator", [NNKDClassifier(), DistilledClassifier()], ids=lambda e: type(e).__name__)
def test_the_estimators_pass_scikit_learns_checks(estimator):
    results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= set(SKIPPED), skipped - set(SKIPPED)


def test_a_grid_search_over_the_temperature():
    X, y, X_test, y_test = digits()
    teacher = NNKDClassifier(hidden_layer_sizes=(128,), epochs=20)  # trained on each fold's rows
    search = GridSearchCV(DistilledClassifier(teacher=teacher, hidden_layer_sizes=(16,), epochs=30),
                          {"temperature": [1, 4, 20]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["temperature"] in (1, 4, 20)
    scores = search.cv_results_["mean_test_score"]
    assert len(set(np.round(scores, 6))) == 3  # the temperature changes the students
    assert search.score(X_test, y_test) > 0.9


def test_fit_predict_and_score_train_in_memory_without_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y, X_test, y_test = digits()
    labels = np.array(list("abcdefghij"))
    clf = NNKDClassifier(hidden_layer_sizes=(64,), epochs=10).fit(X, labels[y])
    assert list(tmp_path.iterdir()) == []
    assert (clf.classes_ == labels).all()
    assert set(clf.predict(X_test)) <= set(labels)
    p = clf.predict_proba(X_test)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    assert (labels[p.argmax(axis=1)] == clf.predict(X_test)).all()
    assert clf.score(X_test, labels[y_test]) > 0.85
    again = pickle.loads(pickle.dumps(clf))
    assert (again.predict_logits(X_test) == clf.predict_logits(X_test)).all()
    same = NNKDClassifier(hidden_layer_sizes=(64,), epochs=10).fit(X, labels[y])
    assert (same.predict_logits(X_test) == clf.predict_logits(X_test)).all()  # the seed fixes the weights


def test_a_run_folder_is_written_only_when_asked_for(tmp_path):
    X, y, _, _ = digits()
    NNKDClassifier(hidden_layer_sizes=(16,), epochs=2, run_dir=tmp_path / "run").fit(X, y)
    assert (tmp_path / "run" / "checkpoint.npz").is_file()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2


def test_every_kind_of_teacher_gives_the_same_student(tmp_path):
    X, y, X_test, _ = digits()
    teacher = NNKDClassifier(hidden_layer_sizes=(64,), epochs=10).fit(X, y)
    logits = teacher.predict_logits(X)
    kw = dict(hidden_layer_sizes=(16,), epochs=5, temperature=4)
    want = DistilledClassifier(teacher=logits, **kw).fit(X, y).predict_logits(X_test)
    assert (DistilledClassifier(teacher=teacher, **kw).fit(X, y).predict_logits(X_test) == want).all()
    from nnkd import checkpoint
    from nnkd.config import TrainConfig
    cfg = TrainConfig(**teacher._network_config)
    from dataclasses import asdict
    checkpoint.save(tmp_path / "t.npz", teacher.network_.state(), {"config": asdict(cfg), "epoch": 10})
    got = DistilledClassifier(teacher=str(tmp_path / "t.npz"), **kw).fit(X, y).predict_logits(X_test)
    assert (got == want).all()
    if pytest.importorskip("onnx", reason="the onnx extra") and pytest.importorskip("onnxruntime"):
        from nnkd.onnx_export import export_onnx
        export_onnx(tmp_path / "t.npz", tmp_path / "t.onnx")
        onnx_student = DistilledClassifier(teacher=tmp_path / "t.onnx", **kw).fit(X, y)
        np.testing.assert_allclose(onnx_student.predict_logits(X_test), want, rtol=1e-3, atol=1e-3)


def test_any_classifier_can_teach_through_its_probabilities():
    X, y, X_test, y_test = digits()
    teacher = KNeighborsClassifier(n_neighbors=15).fit(X, y)
    student = DistilledClassifier(teacher=teacher, hidden_layer_sizes=(32,), epochs=20, temperature=2).fit(X, y)
    assert student.score(X_test, y_test) > 0.85


def test_mistakes_are_one_line_value_errors():
    X, y, _, _ = digits()
    with pytest.raises(ValueError, match=r"teacher logits of shape \(3, 10\)"):
        DistilledClassifier(teacher=np.zeros((3, 10))).fit(X, y)
    with pytest.raises(ValueError, match="nnkd ships no model of that name"):
        DistilledClassifier(teacher="no-such-teacher").fit(X, y)
    with pytest.raises(ValueError, match="takes 784 features, X has 64"):
        DistilledClassifier(teacher="public-teacher").fit(X, y)
    with pytest.raises(ValueError, match="lr"):
        NNKDClassifier(lr=-1.0).fit(X, y)


@pytest.mark.mnist
def test_a_shipped_teacher_by_name_teaches_a_small_student_on_mnist():
    from nnkd.data import load, to_float32
    ds = load("mnist")
    X, y = to_float32(ds.train_features[:2000]), ds.train_labels[:2000]
    student = DistilledClassifier(teacher="public-teacher", temperature=4, hidden_layer_sizes=(100,), epochs=10)
    student.fit(X, y)
    assert student.score(to_float32(ds.test_features[:2000]), ds.test_labels[:2000]) > 0.85


def test_without_scikit_learn_the_import_says_which_extra_to_install(monkeypatch):
    import importlib
    import sys
    monkeypatch.setitem(sys.modules, "sklearn.base", None)  # as if scikit-learn were not installed
    monkeypatch.delitem(sys.modules, "nnkd.estimators")
    with pytest.raises(ImportError, match=r"scikit-learn 1\.6 or later, which is not installed: pip install"):
        importlib.import_module("nnkd.estimators")
