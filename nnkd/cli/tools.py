"""The commands that read what runs wrote, or check the install: ``plot``, ``report``,
``evaluate``, ``export``, ``data`` and ``gradcheck`` (the training commands are in
:mod:`nnkd.cli`)."""

import time
from pathlib import Path

from ..backend import get_backend
from ..errors import UserError


def cmd_plot(args):
    from ..plots import plot
    plot(args.run_dirs[0], others=args.run_dirs[1:], out=args.out, force=args.force)
    return 0


def cmd_report(args):
    from ..tables import runs_table
    print(runs_table(args.run_dirs))
    return 0


def cmd_evaluate(args):
    from ..checkpoint import load_model
    from ..data import load
    from ..data import device_data
    from ..evaluation import check_evaluation_data, evaluate

    from ..install import find_model
    backend = get_backend(args.backend)
    net, meta = load_model(find_model(args.checkpoint), backend)
    dataset, source = args.dataset, "--dataset"
    if dataset is None:
        dataset, source = _run_dataset(Path(args.checkpoint))
        print(f"dataset {dataset} ({source})")
    ds = load(dataset)
    check_evaluation_data(net.sizes, ds.n_features, ds.test_labels, model=f"the model {args.checkpoint}",
                          data=f"the dataset {dataset}")
    r = evaluate(net, device_data(ds, backend))
    print(f"{args.checkpoint}: {'-'.join(map(str, net.sizes))}, epoch {meta.get('epoch')}")
    print(f"test errors: {r['errors']} of {r['n']} ({100 * r['errors'] / r['n']:.2f}%)")
    per_class = list(enumerate(r["per_class_errors"]))
    if len(per_class) > 100:
        per_class = [(c, e) for c, e in per_class if e]
        print(f"errors per class, of {len(r['per_class_errors'])} classes (those without errors left out):")
    else:
        print("errors per class:", end=" ")
    print("  ".join(f"{c}:{e}" for c, e in per_class))
    if r["confusion"] is None or len(r["confusion"]) > 30:
        print(f"confusion matrix: not shown for {len(r['per_class_errors'])} classes (up to 30)")
        return 0
    print("confusion matrix (rows: true class, columns: predicted):")
    print("      " + "".join(f"{c:6d}" for c in range(len(r["confusion"]))))
    for c, row in enumerate(r["confusion"]):
        print(f"{c:6d}" + "".join(f"{v:6d}" for v in row))
    return 0


def _run_dataset(checkpoint):
    """The dataset named by the settings of the run or sweep that wrote ``checkpoint`` (its
    ``run.json`` or ``sweep.json``, beside it or one folder up), and where that was found; else
    mnist."""
    from ..files import read_json
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        for name in ("run.json", "sweep.json"):
            settings = folder / name
            if settings.is_file():
                dataset = read_json(settings, "run settings").get("dataset")
                if isinstance(dataset, str) and dataset:
                    return dataset, f"from {settings}"
    return "mnist", "the default: no run.json names another; give --dataset"


def cmd_export(args):
    import hashlib
    from ..install import find_model
    dest = Path(args.dest)
    source = find_model(args.checkpoint)
    T = args.softmax_temperature
    if args.format == "onnx":
        from ..onnx_export import export_onnx
        r = export_onnx(source, dest, softmax_temperature=T, force=args.force)
        what = "logits" if T is None else f"softmax(logits / {T:g})"
        print(f"{dest}: ONNX opset {r['opset']}, {'-'.join(map(str, r['sizes']))}, {r['bytes']:,} bytes, "
              f"sha256 {r['sha256']}")
        print(f"input 'input' float32 [N, {r['sizes'][0]}] -> output '{r['output']}' float32 "
              f"[N, {r['sizes'][-1]}] = {what}")
        return 0
    if T is not None:
        raise UserError("--softmax-temperature applies to --format onnx only: the .npz export holds the "
                        "weights, not an output layer")
    from ..checkpoint import export_weights
    export_weights(source, dest, force=args.force, exported_from=Path(args.checkpoint).name)
    print(f"{dest}: sha256 {hashlib.sha256(dest.read_bytes()).hexdigest()}")
    return 0


def cmd_teachers(args):
    from ..install import shipped_model_list
    models = shipped_model_list()
    print(f"{'name':16s} {'test errors':>11s} {'size':>8s}  sha256 of checkpoint.npz")
    for m in models:
        print(f"{m.name:16s} {m.test_errors:11d} {m.bytes / 1e6:6.1f} MB  {m.sha256}")
        print(f"{'':16s} {m.recipe}")
    print(f"each name is accepted by --teacher, evaluate, export and nnkd.load_model; files in "
          f"{models[0].path.parent.parent if models else 'none'}")
    return 0


def cmd_data(args):
    from ..data import cached_files, clear_cache, default_root, describe, load
    from ..tables import count
    if args.cache or args.clear_cache:
        root = default_root()
        files = cached_files(root)
        print(f"cache folder {root} (set NNKD_DATA to use another)")
        for name in sorted({name for name, _, _ in files}):
            size = sum(b for n, _, b in files if n == name)
            print(f"  {name:14s} {count(sum(n == name for n, _, _ in files), 'file')}, {size / 1e6:.1f} MB")
        if not files:
            print("  no dataset cached")
        if args.clear_cache:
            n, size = clear_cache(root)
            print(f"removed {count(n, 'file')}, {size / 1e6:.1f} MB; a dataset is fetched again when next used")
        return 0
    t0 = time.perf_counter()
    ds = load(args.dataset)
    for line in describe(ds):
        print(line)
    print(f"time      {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_gradcheck(args):
    from ..gradcheck import standard_checks
    backend = get_backend(args.backend)
    results = standard_checks(backend)
    print(f"gradient checks, float64, {backend.describe()}")
    print(f"{'component':42s} {'shape':>10s} {'max rel error':>14s}  result")
    for r in results:
        print(f"{r.name:42s} {'x'.join(map(str, r.shape)):>10s} {r.max_rel_error:14.2e}  "
              f"{'pass' if r.passed else 'FAIL'}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(r.details)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
