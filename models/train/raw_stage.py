"""Stage 2: a 1-D CNN on the raw wrist window, joined with the feature vector (JAX on the CPU).

The raw input is the tensor `biofeedd features --raw-spec raw.toml` dumps (4 rows at 8 Hz over
60 s: PPG, EDA, temperature, accelerometer magnitude), so training sees exactly what the daemon
hands the model. The features enter through a small dense branch, standardised and imputed like
stage 1's; the two branches meet in a dense head.

    raw [1,4,480] → Conv 4→8 k7 s2 → ReLU → Conv 8→16 k5 s2 → ReLU → Conv 16→16 k5 s2 → ReLU
                  → global mean and max over time (32)
    features [1,F] → standardise → MatMul F→16 → ReLU (16)
    concat (48) → MatMul 48→16 → ReLU → MatMul 16→2 → / T → Softmax

Dense layers are MatMul + Add (not Gemm) so that onnxruntime's dynamic quantisation, which
quantises MatMul and Conv, covers all of them for the int8 variant.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

# (out channels, kernel, stride) per convolution.
CONVS = [(8, 7, 2), (16, 5, 2), (16, 5, 2)]
FEAT_HIDDEN, HEAD_HIDDEN = 16, 16


def init(key, channels, n_features):
    params = {}
    cin = channels
    for i, (cout, k, _) in enumerate(CONVS):
        key, sub = jax.random.split(key)
        params[f"c{i}"] = jax.random.normal(sub, (cout, cin, k)) * np.sqrt(2 / (cin * k))
        params[f"cb{i}"] = jnp.zeros(cout)
        cin = cout
    for name, (d_in, d_out) in {"f": (n_features, FEAT_HIDDEN), "h": (2 * cin + FEAT_HIDDEN, HEAD_HIDDEN),
                                "o": (HEAD_HIDDEN, 2)}.items():
        key, sub = jax.random.split(key)
        params[name] = jax.random.normal(sub, (d_in, d_out)) * np.sqrt(2 / d_in)
        params[name + "b"] = jnp.zeros(d_out)
    return params


def logits_fn(params, raw, feats):
    x = raw
    for i, (_, k, s) in enumerate(CONVS):
        x = jax.lax.conv_general_dilated(x, params[f"c{i}"], (s,), [(k // 2, k // 2)],
                                         dimension_numbers=("NCH", "OIH", "NCH"))
        x = jax.nn.relu(x + params[f"cb{i}"][None, :, None])
    pooled = jnp.concatenate([x.mean(2), x.max(2)], 1)
    f = jax.nn.relu(feats @ params["f"] + params["fb"])
    h = jax.nn.relu(jnp.concatenate([pooled, f], 1) @ params["h"] + params["hb"])
    return h @ params["o"] + params["ob"]


def train(raw, feats, y, seed, epochs=8, batch=256, lr=2e-3, l2=0.03, soft=None):
    """Balanced cross-entropy with L2, minibatch Adam; `feats` already imputed. Returns a model
    (mean, std, params) whose `mean`/`std` standardise the features.

    Strong L2 and few epochs: the network memorises the training subjects fast. Grouped 9-fold
    balanced accuracy / AUROC on unseen subjects: 30 epochs, L2 1e-3: 0.683 / 0.751; 8 epochs,
    1e-2: 0.712 / 0.777; 8 epochs, 3e-2: 0.714 / 0.782; 12 epochs, 3e-2: 0.710 / 0.780."""
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    Z = ((feats - mean) / std).astype(np.float32)
    raw = raw.astype(np.float32)
    counts = np.bincount(y, minlength=2).astype(float)
    w = (len(y) / (2 * np.maximum(counts, 1)))[y].astype(np.float32)
    Y = np.eye(2, dtype=np.float32)[y]
    if soft is not None:
        Y = 0.5 * Y + 0.5 * np.stack([1 - soft, soft], 1).astype(np.float32)
    params = init(jax.random.PRNGKey(seed), raw.shape[1], Z.shape[1])

    def loss(p, r, f, yb, wb):
        lg = logits_fn(p, r, f)
        ce = -(yb * jax.nn.log_softmax(lg)).sum(1)
        reg = sum(jnp.sum(v * v) for k, v in p.items() if not k.endswith("b") and not k.startswith("cb"))
        return (ce * wb).sum() / wb.sum() + l2 * reg

    @jax.jit
    def step(p, m, v, t, r, f, yb, wb):
        g = jax.grad(loss)(p, r, f, yb, wb)
        m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        p = jax.tree.map(lambda a, mm, vv: a - lr * (mm / (1 - 0.9**t)) / (jnp.sqrt(vv / (1 - 0.999**t)) + 1e-8),
                         p, m, v)
        return p, m, v

    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(seed)
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        # Whole batches only: one compiled shape.
        for b in range(len(y) // batch):
            idx = order[b * batch:(b + 1) * batch]
            t += 1
            params, m, v = step(params, m, v, t, raw[idx], Z[idx], Y[idx], w[idx])
    return mean, std, {k: np.asarray(a, dtype=np.float64) for k, a in params.items()}


def logits_of(model, raw, feats, batch=2048):
    mean, std, params = model
    Z = ((feats - mean) / std).astype(np.float32)
    f = jax.jit(logits_fn)
    out = [np.asarray(f(params, raw[i:i + batch].astype(np.float32), Z[i:i + batch])) for i in range(0, len(Z), batch)]
    return np.concatenate(out).astype(np.float64)


def macs(model, channels, length):
    _, _, params = model
    total, cin, n = 0, channels, length
    for i, (cout, k, s) in enumerate(CONVS):
        n = (n + 2 * (k // 2) - k) // s + 1
        total += cout * cin * k * n
        cin = cout
    return total + sum(params[k].size for k in ("f", "h", "o"))


def onnx_graph(name, model, temperature, channels, length):
    """Serialised ONNX (inputs `features` [1,F] and `raw` [1,C,L]) and its MACs."""
    mean, std, params = model
    f32 = lambda a, n: numpy_helper.from_array(np.asarray(a, dtype=np.float32), n)  # noqa: E731
    inits = [f32(mean, "mean"), f32(std, "std"), f32([temperature], "temperature")]
    nodes = [helper.make_node("Sub", ["features", "mean"], ["centered"]),
             helper.make_node("Div", ["centered", "std"], ["z"])]
    x = "raw"
    for i, (_, k, s) in enumerate(CONVS):
        inits += [f32(params[f"c{i}"], f"c{i}"), f32(params[f"cb{i}"], f"cb{i}")]
        nodes += [helper.make_node("Conv", [x, f"c{i}", f"cb{i}"], [f"conv{i}"], kernel_shape=[k], strides=[s],
                                   pads=[k // 2, k // 2]),
                  helper.make_node("Relu", [f"conv{i}"], [f"act{i}"])]
        x = f"act{i}"
    nodes += [helper.make_node("ReduceMean", [x], ["mean_t"], axes=[2], keepdims=0),
              helper.make_node("ReduceMax", [x], ["max_t"], axes=[2], keepdims=0)]

    def dense(inp, key, out, relu=True):
        inits.extend([f32(params[key], key), f32(params[key + "b"], key + "b")])
        nodes.extend([helper.make_node("MatMul", [inp, key], [out + "_mm"]),
                      helper.make_node("Add", [out + "_mm", key + "b"], [out + ("_pre" if relu else "")])])
        if relu:
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out]))

    dense("z", "f", "feat_h")
    nodes.append(helper.make_node("Concat", ["mean_t", "max_t", "feat_h"], ["joined"], axis=1))
    dense("joined", "h", "head_h")
    dense("head_h", "o", "logits", relu=False)
    nodes += [helper.make_node("Div", ["logits", "temperature"], ["calibrated"]),
              helper.make_node("Softmax", ["calibrated"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, mean.size]),
         helper.make_tensor_value_info("raw", TensorProto.FLOAT, [1, channels, length])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 2])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="biofeedd-train")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString(), macs(model, channels, length)
