"""The cases of the adversarial pass (:mod:`benchmarks.adversarial` runs them): a command line
or a Python API call each, with the exit status or the refusal expected and what to check."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import numpy.lib.format as fmt

from nnkd import example_data

DIGITS = str(example_data("digits8x8"))
DS = f"npz:{DIGITS}"
CASES = []  # (group, name, spec): spec ("cli", args, rc, env, check), ("api", fn, refuses, check) or ("signal", ...)


def case(group, name, args, rc=(0,), env=None, check=None):
    """A command-line case: ``args`` after ``main.py``; ``check(result)`` returns a problem or None."""
    CASES.append((group, name, ("cli", args, rc, env, check)))


def api(group, name, fn, refuses=True, check=None):
    """A Python API case: ``fn()`` must raise a one-line UserError (``refuses``) or return."""
    CASES.append((group, name, ("api", fn, refuses, check)))


def has(text, where="stderr"):
    return lambda r: None if text in getattr(r, where) else f"{text!r} not in {where}: {getattr(r, where)[-300:]}"


def npy_header_only(path, shape, dtype="<f4"):
    import numpy.lib.format as fmt
    with open(path, "wb") as f:
        fmt.write_array_header_2_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return path


def digits_arrays():
    d = np.load(DIGITS)
    return {k: d[k].reshape(len(d[k]), -1).astype(np.float32) / np.float32(255) if k[0] == "x"
            else d[k].astype(np.int64) for k in ("x_train", "y_train", "x_test", "y_test")}


def cases(tmp, ckpt, onnx, run, z):
    small = ["--preset", "smoke", "--epochs", "1", "--dataset", DS]
    n = iter(range(10**6))

    def out():
        return tmp / f"o{next(n)}"

    # ---- ONNX teachers
    for value in ("4,2", "abc", "", "0", "-1", "1", " 2 ", "1e3"):
        case("ONNX", f"OMP_NUM_THREADS={value!r}", ["distill", *small, "--teacher", onnx, "--out", out()],
             env={"OMP_NUM_THREADS": value})
    case("ONNX", "probabilities flag on a logits model",
         ["distill", *small, "--teacher", onnx, "--teacher-outputs", "probabilities", "--out", out()], rc=(2,))
    for name, content in (("text.onnx", b"not a model"), ("empty.onnx", b""), ("npz.onnx", Path(ckpt).read_bytes())):
        (tmp / name).write_bytes(content)
        case("ONNX", f"a teacher that is {name}", ["distill", *small, "--teacher", tmp / name, "--out", out()], rc=(2,))
    (tmp / "dir.onnx").mkdir()
    case("ONNX", "a teacher .onnx that is a folder", ["distill", *small, "--teacher", tmp / "dir.onnx", "--out", out()],
         rc=(2,))
    case("ONNX", "an ONNX teacher of 64 inputs on MNIST", ["distill", "--preset", "smoke", "--epochs", "1",
                                                           "--teacher", onnx, "--out", out(), "--dry-run"], rc=(2,))
    case("ONNX", "an ONNX teacher with --retrain-teacher",
         ["distill", *small, "--teacher", onnx, "--retrain-teacher", "--out", out()], rc=(0, 2))
    case("ONNX", "an ONNX teacher in a sweep",
         ["sweep", *small, "--teacher", onnx, "--widths", "8", "--temperatures", "3", "--seeds", "0",
          "--out", tmp / "osweep"])
    case("ONNX", "the same sweep again: nothing to train",
         ["sweep", *small, "--teacher", onnx, "--widths", "8", "--temperatures", "3", "--seeds", "0",
          "--out", tmp / "osweep"],
         check=has("1 already done, 0 to train", "stdout"))
    case("ONNX", "the same sweep with a second seed: extended",
         ["sweep", *small, "--teacher", onnx, "--widths", "8", "--temperatures", "3", "--seeds", "0,1",
          "--out", tmp / "osweep"], check=has("1 already done, 1 to train", "stdout"))
    case("ONNX", "a probability exporter's --softmax-temperature 0",
         ["export", ckpt, tmp / "p.onnx", "--format", "onnx", "--softmax-temperature", "0"], rc=(2,))
    case("ONNX", "export onto the existing ONNX file", ["export", ckpt, onnx, "--format", "onnx"], rc=(2,),
         check=has("--force"))

    # ---- logits files
    bad = {"ints": z.astype(np.int32), "nan": np.where(np.arange(z.size).reshape(z.shape) == 5, np.nan, z),
           "1d": z.ravel(), "classes": z[:, :9], "images": z[:-1], "shifts": np.stack([z, z]),
           "beyond float32": z.astype(np.float64) * 1e300, "4d": z[None, None]}
    for name, a in bad.items():
        path = tmp / f"logits-{name.replace(' ', '-')}.npy"
        np.save(path, a)
        case("logits", f"a logits file of {name}", ["distill", *small, "--teacher-logits", path, "--out", out()],
             rc=(2,))
    np.save(tmp / "logits16.npy", z.astype(np.float16))
    case("logits", "float16 logits (floats: taken)", ["distill", *small, "--teacher-logits", tmp / "logits16.npy",
                                                      "--out", out()])
    npy_header_only(tmp / "logits-huge.npy", (200_000_000, 10))
    case("logits", "a header of 200,000,000 images (sparse file)",
         ["distill", *small, "--teacher-logits", tmp / "logits-huge.npy", "--out", out()], rc=(2,),
         check=has("200000000 images"))
    npy_header_only(tmp / "logits-tib.npy", (2**40 // 40, 10))
    case("logits", "a header of 4 TiB", ["distill", *small, "--teacher-logits", tmp / "logits-tib.npy",
                                         "--out", out()], rc=(2,))
    for name, content in (("empty", b""), ("json", b'{"a": 1}'), ("npz", Path(ckpt).read_bytes()),
                          ("cut", (tmp / "logits.npy").read_bytes()[:300])):
        (tmp / f"logits-{name}.npy").write_bytes(content)
        case("logits", f"a logits file that is {name}", ["distill", *small, "--teacher-logits",
                                                         tmp / f"logits-{name}.npy", "--out", out()], rc=(2,))
    case("logits", "a missing logits file", ["distill", *small, "--teacher-logits", tmp / "none.npy", "--out", out()],
         rc=(2,))
    case("logits", "logits and --teacher", ["distill", *small, "--teacher-logits", tmp / "logits.npy", "--teacher",
                                            ckpt, "--out", out()], rc=(2,))
    case("logits", "logits with --transfer-jitter 1 (needs 9 shifts)",
         ["distill", *small, "--teacher-logits", tmp / "logits.npy", "--transfer-jitter", "1", "--out", out()], rc=(2,))
    lrun = tmp / "lrun"
    case("logits", "a logits run", ["distill", *small, "--teacher-logits", tmp / "logits.npy", "--out", lrun])
    case("logits", "the logits run (cosine) resumed longer: a new run", ["distill", "--resume", lrun, "--epochs", "2"],
         rc=(2,), check=has("cosine"))

    # ---- resume
    case("resume", "a folder that does not exist", ["distill", "--resume", tmp / "nowhere"], rc=(2,))
    (tmp / "afile").write_text("x")
    case("resume", "a file", ["distill", "--resume", tmp / "afile"], rc=(2,))
    case("resume", "a sweep folder", ["distill", "--resume", tmp / "osweep"], rc=(2,), check=has("sweep"))
    case("resume", "with another --lr", ["distill", "--resume", run, "--lr", "0.3"], rc=(2,))
    case("resume", "shorter --epochs", ["distill", "--resume", run, "--epochs", "1"], rc=(2,))
    case("resume", "as train-student", ["train-student", "--resume", run], rc=(2,))
    case("resume", "a finished run again", ["distill", "--resume", run])
    case("resume", "--resume ''", ["distill", "--resume", ""], rc=(2,))
    case("resume", "--resume with --dry-run", ["distill", "--resume", run, "--dry-run"])
    for name, text in (("empty", ""), ("cut", '{"command": "distill", '), ("list", "[1, 2]"),
                       ("bad epochs", None)):
        r = tmp / f"rjson-{name.replace(' ', '-')}"
        r.mkdir()
        spec = json.loads((run / "run.json").read_text())
        if text is None:
            spec["configs"]["student"]["epochs"] = "two"
            text = json.dumps(spec)
        (r / "run.json").write_text(text)
        case("resume", f"a run.json that is {name}", ["distill", "--resume", r], rc=(2,))
    case("resume", "--epochs equal to the run's", ["distill", "--resume", run, "--epochs", "2"])

    # ---- Adam and float32 settings
    for flag, value in (("--beta2", "1"), ("--beta2", "0.999999999"), ("--beta2", "-0.1"), ("--beta2", "nan"),
                        ("--momentum-start", "0.99999999"), ("--momentum-end", "1"), ("--lr", "1e-50"),
                        ("--lr", "1e39"), ("--dropout-input", "0.99999999999"), ("--lr-decay", "1e-46"),
                        ("--soft-weight", "1e-46"), ("--init-std", "1e-46")):
        case("Adam", f"{flag} {value}", ["train-student", *small, "--optimizer", "adam", flag, value, "--dry-run"],
             rc=(2,), check=has(flag))
    case("Adam", "adam with --momentum-form paper (warned)",
         ["train-student", *small, "--optimizer", "adam", "--momentum-form", "paper", "--dry-run"],
         check=has("warning", "stdout"))
    case("Adam", "adam trains", ["train-student", *small, "--optimizer", "adam", "--lr-schedule", "constant",
                                 "--lr", "0.001", "--out", tmp / "adam"])
    case("Adam", "adam resumed longer", ["train-student", "--resume", tmp / "adam", "--epochs", "2"])
    case("Adam", "--optimizer ADAM", ["train-student", *small, "--optimizer", "ADAM", "--dry-run"], rc=(2,))

    # ---- npz data
    d = np.load(DIGITS)
    arrays = {k: d[k] for k in d.files}
    for name, change in (("labels as floats", dict(y_train=arrays["y_train"].astype(np.float32) + 0.5)),
                         ("NaN features", dict(x_test=np.full(arrays["x_test"].shape, np.nan, np.float32))),
                         ("lengths that differ", dict(y_train=arrays["y_train"][:-1])),
                         ("image_shape 3 numbers", dict(image_shape=np.array([2, 4, 8]))),
                         ("image_shape that does not fit", dict(image_shape=np.array([7, 7]))),
                         ("one test image of another width", dict(x_test=arrays["x_test"].reshape(500, -1)[:, :63])),
                         ("an object array", dict(y_train=arrays["y_train"].astype(object)))):
        path = tmp / f"data-{name.replace(' ', '-')}.npz"
        np.savez(path, **dict(arrays, **change))
        case("npz", name, ["train-student", "--preset", "smoke", "--epochs", "1", "--dataset", f"npz:{path}",
                           "--out", out()], rc=(2,))
    np.savez(tmp / "data-wrapped.npz", **dict(arrays, y_test=arrays["y_test"] - 1))
    case("npz", "uint8 test labels wrapped below 0: 256 classes, said in the load line",
         ["train-student", "--preset", "smoke", "--epochs", "1", "--dataset", f"npz:{tmp / 'data-wrapped.npz'}",
          "--out", out()], check=has("256 classes", "stdout"))
    path = tmp / "data-tib.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for k in ("y_train", "x_test", "y_test"):
            with zf.open(k + ".npy", "w") as f:
                np.save(f, arrays[k])
        with zf.open("x_train.npy", "w") as f:
            fmt.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": (2**44 // 64, 64)})
    case("npz", "a member that claims 16 TiB", ["data", "--dataset", f"npz:{path}"], rc=(2,), check=has("TiB"))
    flat = tmp / "flat.npz"
    np.savez(flat, **{k: (v.reshape(len(v), -1) if k[0] == "x" else v) for k, v in arrays.items() if k != "image_shape"})
    case("npz", "data that is not images with the fast preset (jitter off)",
         ["train-teacher", "--dataset", f"npz:{flat}", "--epochs", "1", "--dry-run"])
    case("npz", "data that is not images with --jitter 1", ["train-teacher", "--dataset", f"npz:{flat}", "--jitter",
                                                            "1", "--dry-run"], rc=(2,))
    case("npz", "--jitter 1 on 8x8 images, asked for", ["train-teacher", *small, "--jitter", "1", "--dry-run"])
    case("npz", "--jitter 8 on 8x8 images", ["train-teacher", *small, "--jitter", "8", "--dry-run"], rc=(2,))
    case("npz", "the run header names the preset tuned on MNIST", ["train-teacher", "--dataset", DS, "--dry-run"],
         check=has("tuned on MNIST", "stdout"))
    case("npz", "npz: with no path", ["data", "--dataset", "npz:"], rc=(2,))
    case("npz", "npz:~nosuchuser/x.npz", ["data", "--dataset", "npz:~nosuchuser/x.npz"], rc=(2,))
    case("npz", "a folder of .npy files missing one", ["data", "--dataset", f"npz:{tmp}"], rc=(2,))
    swp = ["sweep", *small, "--teacher", ckpt, "--widths", "8", "--temperatures", "2", "--seeds", "0"]
    case("npz", "a sweep on 8x8 digits", [*swp, "--out", tmp / "dsweep"])
    case("npz", "the same sweep again", [*swp, "--out", tmp / "dsweep"], check=has("0 to train", "stdout"))
    case("npz", "the sweep extended by a width", ["sweep", *small, "--teacher", ckpt, "--widths", "8,4",
                                                  "--temperatures", "2", "--seeds", "0", "--out", tmp / "dsweep"],
         check=has("1 already done, 1 to train", "stdout"))
    case("npz", "the sweep with other epochs", [*swp, "--epochs", "2", "--out", tmp / "dsweep"], rc=(2,),
         check=has("other settings"))
    case("npz", "the sweep with --jitter 1 (changes the cells)", [*swp, "--jitter", "1", "--out", tmp / "dsweep"],
         rc=(2,))
    case("npz", "evaluate reads the dataset from run.json", ["evaluate", run / "student" / "checkpoint.npz"],
         check=has("of 500", "stdout"))
    case("npz", "evaluate a sweep cell (sweep.json)", ["evaluate", tmp / "dsweep" / "w8-T2-s0" / "checkpoint.npz"],
         check=has("of 500", "stdout"))
    case("npz", "evaluate with --dataset mnist (other features)", ["evaluate", ckpt, "--dataset", "mnist"], rc=(2,))

    # ---- the Python API
    import nnkd
    from nnkd.errors import UserError  # noqa: F401
    data = digits_arrays()
    cfg = nnkd.TrainConfig(arch="64-8-10", epochs=1)
    for bad in (3.5, 3, "", b"x", ["a"]):  # (None trains in memory)
        api("API", f"train(stage_dir={bad!r})", lambda bad=bad: nnkd.train(cfg, "numpy", data, bad))
    api("API", "train(cfg=dict)", lambda: nnkd.train({"arch": "64-8-10"}, "numpy", data, tmp / "a1"))
    api("API", "train(backend='gpu')", lambda: nnkd.train(cfg, "gpu", data, tmp / "a2"))
    api("API", "train(data=list)", lambda: nnkd.train(cfg, "numpy", [1, 2], tmp / "a3"))
    api("API", "train(data without y_test)", lambda: nnkd.train(cfg, "numpy", {k: v for k, v in data.items()
                                                                               if k != "y_test"}, tmp / "a4"))
    api("API", "train(data of float64)", lambda: nnkd.train(cfg, "numpy", dict(data, x_train=data["x_train"]
                                                                              .astype(np.float64)), tmp / "a5"))
    api("API", "train(teacher_logits of the wrong shape)",
        lambda: nnkd.train(cfg, "numpy", data, tmp / "a6", teacher_logits=np.zeros((3, 10), np.float32)))
    api("API", "train(teacher_logits with NaN)",
        lambda: nnkd.train(cfg, "numpy", data, tmp / "a7", teacher_logits=np.full((1500, 10), np.nan, np.float32)))
    api("API", "train(log=5)", lambda: nnkd.train(cfg, "numpy", data, tmp / "a8", log=5))
    api("API", "TrainConfig(arch='64-x-10') trained", lambda: nnkd.train(nnkd.TrainConfig(arch="64-x-10"), "numpy",
                                                                          data, tmp / "a9"))
    api("API", "TrainConfig(beta2=0.999999999, optimizer='adam')",
        lambda: nnkd.train(nnkd.TrainConfig(arch="64-8-10", optimizer="adam", beta2=0.999999999), "numpy", data,
                           tmp / "a10"))
    api("API", "TrainConfig(epochs=1.5)", lambda: nnkd.train(nnkd.TrainConfig(arch="64-8-10", epochs=1.5), "numpy",
                                                              data, tmp / "a11"))
    for bad in (None, 3, "", tmp / "none.npz", tmp / "afile", DIGITS):
        api("API", f"load_model({str(bad)[-20:]!r})", lambda bad=bad: nnkd.load_model(bad))
    api("API", "load_model(backend='gpu')", lambda: nnkd.load_model(ckpt, backend="gpu"))
    net = nnkd.load_model(ckpt)
    x = data["x_test"][:5].copy()
    for name, arr in (("NaN row", np.where(np.arange(5)[:, None] == 2, np.nan, x).astype(np.float32)),
                      ("inf row", np.where(np.arange(5)[:, None] == 0, np.inf, x).astype(np.float32)),
                      ("a list", x.tolist()), ("uint8", (x * 255).astype(np.uint8)), ("1-D", x[0]),
                      ("63 columns", x[:, :63])):
        api("API", f"predict({name})", lambda arr=arr: net.predict(arr))
        api("API", f"predict_logits({name})", lambda arr=arr: net.predict_logits(arr))
    api("API", "predict(float64) works", lambda: net.predict(x.astype(np.float64)), refuses=False)
    api("API", "predict(0 rows) works", lambda: net.predict(x[:0]), refuses=False)
    api("API", "example_data('nope')", lambda: nnkd.example_data("nope"))
    api("API", "get_backend('tpu')", lambda: nnkd.get_backend("tpu"))

    # ---- signals
    long = ["--preset", "smoke", "--epochs", "400", "--dataset", DS]
    for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
        for command in (["train-student", *long], ["sweep", *long, "--teacher", ckpt, "--widths", "8",
                                                    "--temperatures", "2", "--seeds", "0"]):
            CASES.append(("signals", f"{sig} during {command[0]}", ("signal", sig, tmp / f"sig-{sig}-{command[0]}",
                                                                   command)))

    # ---- the environment
    shutil.copytree(run, tmp / "run-copy")
    case("environment", "report under PYTHONIOENCODING=ascii", ["report", run, tmp / "run-copy"], env={"PYTHONIOENCODING": "ascii"})
    case("environment", "a sweep table under PYTHONIOENCODING=ascii", [*swp[:-1], "0,1", "--out", tmp / "dsweep"],
         env={"PYTHONIOENCODING": "ascii"})
    case("environment", "a non-ASCII --out under LC_ALL=C", ["train-student", *small, "--out", tmp / "rün-é"],
         env={"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"},
         check=lambda r: None if (tmp / "rün-é" / "log.txt").read_text(encoding="utf-8") else "no log")
    case("environment", "a non-ASCII --out under PYTHONIOENCODING=latin-1",
         ["train-student", *small, "--out", tmp / "rûn-✓"], env={"PYTHONIOENCODING": "latin-1"})
    case("environment", "--help under PYTHONIOENCODING=ascii", ["distill", "--help"], env={"PYTHONIOENCODING": "ascii"})
    case("environment", "a bad flag under PYTHONIOENCODING=ascii", ["distill", "--out", "é", "--lr", "x"], rc=(2,),
         env={"PYTHONIOENCODING": "ascii"})
    case("environment", "NNKD_DATA that is a file", ["data"], rc=(0, 2), env={"NNKD_DATA": str(tmp / "afile")})
    case("environment", "OMP_NUM_THREADS=abc without ONNX", ["train-student", *small, "--out", out()],
         env={"OMP_NUM_THREADS": "abc"})
    case("environment", "COLUMNS=0 for --help", ["sweep", "--help"], env={"COLUMNS": "0"})
    case("environment", "TMPDIR that does not exist", ["train-student", *small, "--out", out()],
         env={"TMPDIR": str(tmp / "no-tmp")})

    # ---- the surface
    for cmd in ("distill", "train-teacher", "train-student", "sweep", "export", "evaluate", "plot", "report", "data",
                "gradcheck"):
        case("surface", f"{cmd} with an unknown flag is a hint and one line", [cmd, "--no-such-flag"], rc=(2,),
             check=lambda r: None if len(r.stderr.strip().splitlines()) <= 2 else f"{r.stderr[:300]}")
    case("surface", "--lr abc is a hint and one line", ["distill", "--lr", "abc"], rc=(2,),
         check=lambda r: None if len(r.stderr.strip().splitlines()) == 2 else r.stderr[:300])
    case("surface", "export overwrite names --force", ["export", ckpt, tmp / "t.onnx"], rc=(2,))
    exported = tmp / "w.npz"
    case("surface", "export weights", ["export", ckpt, exported])
    case("surface", "export weights again names --force", ["export", ckpt, exported], rc=(2,), check=has("--force"))
    case("surface", "evaluate an export without run.json (mnist by default: refused)", ["evaluate", exported],
         rc=(2,))
