"""KAN adapters: edges from the state dict vs each family's own forward (the independent truth).

pykan is the real pykan 0.2.8; efficient-kan and FastKAN are small reference modules written here
from their published forwards (Blealtan/efficient-kan ``KANLinear``, ZiyaoLi/fast-kan
``FastKANLayer``), computing the layer the way those libraries do (basis matrix times weights).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit.errors import DataError, UnsupportedModelError
from inspect_kit.kan import adapter_for
from inspect_kit.kan.sampling import EdgeSamples, sample_edges
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo.kan import KAN

kan = pytest.importorskip("kan")

TOL = 1e-6


# ---------------------------------------------------------------- reference efficient-kan / FastKAN
class RefKANLinear(nn.Module):
    """efficient-kan's KANLinear: silu(x) @ base_weight.T + B(x).view(B, -1) @ scaled.view(out, -1).T"""

    def __init__(self, n_in: int, n_out: int, grid_size: int = 5, spline_order: int = 3,
                 standalone_scale: bool = True, grid_range=(-1.0, 1.0), seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.in_features, self.out_features = n_in, n_out
        self.grid_size, self.spline_order = grid_size, spline_order
        h = (grid_range[1] - grid_range[0]) / grid_size
        grid = torch.arange(-spline_order, grid_size + spline_order + 1) * h + grid_range[0]
        self.register_buffer("grid", grid.expand(n_in, -1).contiguous())
        self.base_weight = nn.Parameter(torch.randn(n_out, n_in, generator=g) * 0.5)
        n_basis = grid_size + spline_order
        self.spline_weight = nn.Parameter(torch.randn(n_out, n_in, n_basis, generator=g) * 0.3)
        self.enable_standalone_scale_spline = standalone_scale
        if standalone_scale:
            self.spline_scaler = nn.Parameter(1 + 0.5 * torch.randn(n_out, n_in, generator=g))
        self.base_activation = nn.SiLU()

    def b_splines(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid
        x = x.unsqueeze(-1)
        bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
        for k in range(1, self.spline_order + 1):
            bases = ((x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)]) * bases[:, :, :-1]) + (
                (grid[:, k + 1 :] - x) / (grid[:, k + 1 :] - grid[:, 1:(-k)]) * bases[:, :, 1:])
        return bases.contiguous()

    @property
    def scaled_spline_weight(self) -> torch.Tensor:
        s = self.spline_scaler.unsqueeze(-1) if self.enable_standalone_scale_spline else 1.0
        return self.spline_weight * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, self.in_features)
        base = F.linear(self.base_activation(x), self.base_weight)
        spline = F.linear(self.b_splines(x).view(x.size(0), -1),
                          self.scaled_spline_weight.view(self.out_features, -1))
        return (base + spline).reshape(*shape[:-1], self.out_features)


class RefEfficientKAN(nn.Module):
    def __init__(self, widths, **kw):
        super().__init__()
        self.layers = nn.ModuleList(RefKANLinear(a, b, seed=s, **kw)
                                    for s, (a, b) in enumerate(zip(widths[:-1], widths[1:])))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class RefRBF(nn.Module):
    def __init__(self, lo=-2.0, hi=2.0, n=8):
        super().__init__()
        self.grid = nn.Parameter(torch.linspace(lo, hi, n), requires_grad=False)
        self.denominator = (hi - lo) / (n - 1)

    def forward(self, x):
        return torch.exp(-((x[..., None] - self.grid) / self.denominator) ** 2)


class RefFastKANLayer(nn.Module):
    """FastKAN's layer: rbf(layernorm(x)) @ spline_linear + base_linear(silu(x))."""

    def __init__(self, n_in, n_out, use_layernorm=True, use_base_update=True, num_grids=8):
        super().__init__()
        self.layernorm = nn.LayerNorm(n_in) if use_layernorm else None
        self.rbf = RefRBF(n=num_grids)
        self.spline_linear = nn.Linear(n_in * num_grids, n_out, bias=False)
        self.use_base_update = use_base_update
        if use_base_update:
            self.base_activation = F.silu
            self.base_linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        basis = self.rbf(self.layernorm(x) if self.layernorm is not None else x)
        ret = self.spline_linear(basis.view(*basis.shape[:-2], -1))
        if self.use_base_update:
            ret = ret + self.base_linear(self.base_activation(x))
        return ret


class RefFastKAN(nn.Module):
    def __init__(self, widths, layernorm=(True, True), base=(True, True)):
        super().__init__()
        self.layers = nn.ModuleList(RefFastKANLayer(a, b, use_layernorm=ln, use_base_update=bu)
                                    for (a, b), ln, bu in zip(zip(widths[:-1], widths[1:]), layernorm, base))
        with torch.no_grad():  # non-trivial LayerNorm affine
            for layer in self.layers:
                if layer.layernorm is not None:
                    layer.layernorm.weight.uniform_(0.5, 1.5)
                    layer.layernorm.bias.uniform_(-0.3, 0.3)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


# ---------------------------------------------------------------- pykan builders
def pykan_model(tmp_path, width, *, seed=1, mult_arity=2, noise_scale=0.5):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        m = kan.MultKAN(width=width, grid=5, k=3, mult_arity=mult_arity, seed=seed, noise_scale=noise_scale,
                        auto_save=False, ckpt_path=str(tmp_path / "ckpt"))
    finally:
        torch.set_default_dtype(old)
    return m


def decorate(m, gen):
    """A masked edge, a symbolic edge (fix_symbolic) and non-trivial node and sub-node affines."""
    m.act_fun[0].mask.data[1, 0] = 0.0  # numeric edge (l=0, in=1, out=0) masked
    m.fix_symbolic(0, 0, 1, "sin", fit_params_bool=False, verbose=False, log_history=False)
    m.symbolic_fun[0].affine.data[1, 0] = torch.tensor([1.7, 0.3, 0.8, -0.2])
    return random_node_affines(m, gen)


def random_node_affines(m, gen):
    """Non-trivial node and sub-node scales and biases on every layer of a MultKAN."""
    with torch.no_grad():
        for l in range(m.depth):
            for p in (m.subnode_scale[l], m.node_scale[l]):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            for p in (m.subnode_bias[l], m.node_bias[l]):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return m


def x_data(n, d, seed=0, scale=1.3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g, dtype=dtype) * 2 - 1) * scale  # beyond the grid too


# ---------------------------------------------------------------- zoo
@pytest.mark.parametrize("base_fun", ["silu", "identity"])
def test_zoo_forward_from_edges(base_fun):
    m = KAN([3, 4, 2], grid=5, k=3, base_fun=base_fun, seed=3).double()
    with torch.no_grad():
        m.layers[0].mask[1, 2] = 0.0
        m.layers[1].bias.normal_()
    a = adapter_for(m)
    assert a.family == "zoo" and a.widths == [3, 4, 2] and a.edge_shape(0) == (4, 3)
    x = x_data(300, 3)
    with assert_untouched(m):
        out = a.forward_from_edges(x)
        ins = a.layer_inputs(x)
    assert torch.allclose(out, m(x), atol=TOL, rtol=0)
    for l, layer in enumerate(m.layers):
        assert torch.allclose(a.edge_values(l, ins[l]), layer.edge_values(ins[l]), atol=TOL, rtol=0)
    assert a.mask(0)[1, 2] == 0 and a.mask(0).sum() == 11
    assert torch.allclose(a.grid_range(0), torch.tensor([[-1.0, 1.0]] * 3, dtype=torch.float64))


# ---------------------------------------------------------------- pykan
@pytest.mark.parametrize("width,arity", [
    ([3, 4, 2], 2),
    ([2, [0, 1], 1], 2),
    ([2, [1, 2], 1], 3),
    ([2, [1, 2], [1, 1]], [[], [2, 3], [2]]),
])
def test_pykan_forward_and_edges(tmp_path, width, arity):
    gen = torch.Generator().manual_seed(0)
    m = decorate(pykan_model(tmp_path, width, mult_arity=arity), gen)
    a = adapter_for(m)
    assert a.family == "pykan"
    x = x_data(400, m.width_in[0])
    with assert_untouched(m):
        out = a.forward_from_edges(x)
    ref = m(x)  # pykan's own forward (fills its cache: spline_postacts)
    assert torch.allclose(out, ref, atol=TOL, rtol=0), (out - ref).abs().max()
    ins = a.layer_inputs(x)
    for l in range(m.depth):
        assert torch.allclose(ins[l], m.acts[l], atol=TOL, rtol=0)
        assert torch.allclose(a.edge_values(l, ins[l]), m.spline_postacts[l], atol=TOL, rtol=0)
    # the masked numeric edge and the symbolic edge
    assert a.mask(0)[0, 1] == 0
    name, fn, aff = a.symbolic_edge(0, 1, 0)
    assert name == "sin" and np.allclose(aff, [1.7, 0.3, 0.8, -0.2])
    assert a.symbolic_edge(0, 0, 0) is None
    sym = 0.8 * torch.sin(1.7 * ins[0][:, 0] + 0.3) - 0.2
    assert torch.allclose(a.edge_values(0, ins[0])[:, 1, 0] - sym,
                          m.act_fun[0](ins[0])[2][:, 1, 0], atol=TOL)


def test_pykan_float32(tmp_path):
    m = kan.MultKAN(width=[2, 5, 1], grid=5, k=3, seed=0, auto_save=False, ckpt_path=str(tmp_path))
    x = x_data(500, 2, dtype=torch.float32)
    assert torch.allclose(adapter_for(m).forward_from_edges(x), m(x), atol=TOL, rtol=0)


def test_pykan_layer_inputs_keep_cache(tmp_path):
    m = pykan_model(tmp_path, [2, 3, 1])
    first = x_data(50, 2, seed=1)
    m(first)
    cache, acts = m.cache_data, m.acts
    other = x_data(70, 2, seed=2)
    ins = adapter_for(m).layer_inputs(other)
    assert torch.equal(ins[0], other) and len(ins[1]) == 70
    assert m.cache_data is cache and m.acts is acts  # pykan's "last forward" is untouched


def test_pykan_symbolic_disabled(tmp_path):
    gen = torch.Generator().manual_seed(1)
    m = decorate(pykan_model(tmp_path, [2, 3, 1]), gen)
    m.symbolic_enabled = False
    a = adapter_for(m)
    x = x_data(100, 2)
    assert torch.allclose(a.forward_from_edges(x), m(x), atol=TOL, rtol=0)
    assert a.symbolic_edge(0, 1, 0) is None


@pytest.mark.parametrize("width,arity", [([2, [1, 2], 1], 3), ([2, [1, 2], [1, 1]], [[], [2, 3], [2]])])
def test_pykan_node_map_sympy_matches_numeric(tmp_path, width, arity):
    gen = torch.Generator().manual_seed(2)
    m = decorate(pykan_model(tmp_path, width, mult_arity=arity), gen)
    a = adapter_for(m)
    for l in range(a.n_layers):
        n_sub = a.edge_shape(l)[0]
        syms = sympy.symbols(f"s0:{n_sub}")
        exprs = a.node_map_sympy(l, list(syms))
        vals = torch.randn(5, n_sub, dtype=torch.float64, generator=gen)
        fn = sympy.lambdify(syms, exprs, "numpy")
        got = np.array([fn(*row) for row in vals.numpy()], dtype=float)
        assert np.allclose(got, a.node_map(l, vals).numpy(), atol=1e-12)


# ---------------------------------------------------------------- efficient-kan
@pytest.mark.parametrize("standalone", [True, False])
def test_efficient_kan(standalone):
    m = RefEfficientKAN([3, 5, 2], standalone_scale=standalone).double()
    a = adapter_for(m)
    assert a.family == "efficient_kan" and a.widths == [3, 5, 2]
    x = x_data(300, 3)
    with assert_untouched(m):
        out = a.forward_from_edges(x)
        ins = a.layer_inputs(x)
    assert torch.allclose(out, m(x), atol=TOL, rtol=0)
    for l, layer in enumerate(m.layers):  # summed edges = the layer's output (no bias)
        assert torch.allclose(a.edge_values(l, ins[l]).sum(-1), layer(ins[l]), atol=TOL, rtol=0)
    single = RefKANLinear(4, 3).double()
    xs = x_data(50, 4)
    assert torch.allclose(adapter_for(single).forward_from_edges(xs), single(xs), atol=TOL, rtol=0)


# ---------------------------------------------------------------- FastKAN
@pytest.mark.parametrize("layernorm,base", [((True, True), (True, True)), ((False, True), (True, False))])
def test_fastkan(layernorm, base):
    m = RefFastKAN([3, 4, 2], layernorm=layernorm, base=base).double()
    a = adapter_for(m)
    assert a.family == "fastkan" and a.widths == [3, 4, 2]
    x = x_data(300, 3, scale=2.0)
    with assert_untouched(m):
        out = a.forward_from_edges(x)
        ins = a.layer_inputs(x)
    assert torch.allclose(out, m(x), atol=TOL, rtol=0)
    for l, layer in enumerate(m.layers):
        n = a.widths[l]
        split = layer.layernorm is not None and layer.use_base_update
        assert a.edge_shape(l) == (a.widths[l + 1], 2 * n if split else n)
        if layer.layernorm is not None:  # recorded u is the LayerNorm output
            h = m.layers[0](x) if l == 1 else x
            assert torch.allclose(ins[l][:, :n], layer.layernorm(h), atol=TOL)
    assert (a.input_note is not None) == any(layernorm)


def test_fastkan_input_map_sympy():
    m = RefFastKAN([3, 2]).double()
    a = adapter_for(m)
    syms = sympy.symbols("h0:3")
    exprs = a.input_map_sympy(0, list(syms))
    fn = sympy.lambdify(syms, exprs, "numpy")
    h = x_data(4, 3)
    got = np.array([fn(*row) for row in h.numpy()], dtype=float)
    assert np.allclose(got, a.input_map(0, h).numpy(), atol=1e-10)


# ---------------------------------------------------------------- dispatch
def test_unsupported_model_names_families():
    with pytest.raises(UnsupportedModelError, match="pykan"):
        adapter_for(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))


def test_wrong_input_width():
    with pytest.raises(DataError, match="3 input features"):
        adapter_for(KAN([3, 2])).forward_from_edges(torch.zeros(4, 5))


# ---------------------------------------------------------------- sampling
def test_sample_edges_uses_given_data():
    m = KAN([2, 3, 1], seed=0)
    d1 = (x_data(200, 2, seed=1, scale=0.5, dtype=torch.float32), torch.zeros(200, 1))
    d2 = (x_data(200, 2, seed=2, scale=2.0, dtype=torch.float32), torch.zeros(200, 1))
    with assert_untouched(m):
        s1 = sample_edges(m, d1, n_points=51)
        s2 = sample_edges(m, d2, n_points=51)
    assert s1.n_edges == 2 * 3 + 3 * 1 and s1.x.shape == (9, 51) and s1.x_obs.shape == (9, 200)
    r = s1.row(0, 2, 1)
    assert math.isclose(float(s1.x[r, 0]), float(d1[0][:, 1].min()), rel_tol=1e-6)
    assert math.isclose(float(s1.x[r, -1]), float(d1[0][:, 1].max()), rel_tol=1e-6)
    assert float(s2.x[r, -1] - s2.x[r, 0]) > 2.5 * float(s1.x[r, -1] - s1.x[r, 0])
    # dense values are the layer's own edge values at the grid
    assert torch.allclose(s1.y[r], m.layers[0].edge_values(s1.x[[r]].T.expand(-1, 2))[:, 2, 1], atol=TOL)
    assert torch.allclose(s1.y_obs[r], m.layers[0].edge_values(d1[0])[:, 2, 1], atol=TOL)
    h1 = m.layers[0](d1[0])
    assert torch.allclose(s1.observed[1], h1, atol=TOL)


def test_sample_edges_quantiles_subsample_and_held_out(digits):
    m = KAN([64, 4, 10], seed=0)
    s = sample_edges(m, digits, n_points=11, quantiles=(0.05, 0.95), samples=300)
    assert s.n_samples == 300 and s.x.shape == (64 * 4 + 40, 11)
    fit, held = s.held_out(0.25, seed=1)
    assert len(held) == 75 and len(fit) == 225 and not set(fit.tolist()) & set(held.tolist())
    xf, yf, xh, yh = s.split_observed(0.25, seed=1)
    assert xh.shape == (s.n_edges, 75) and torch.equal(xh, s.x_obs[:, held])


def test_sample_edges_pykan_ignores_cache(tmp_path):
    m = pykan_model(tmp_path, [2, 3, 1])
    m(x_data(30, 2, seed=5))  # something else in pykan's cache
    cached = m.cache_data
    data = (x_data(80, 2, seed=6), torch.zeros(80, 1))
    s = sample_edges(m, data)
    assert torch.equal(s.observed[0], data[0]) and m.cache_data is cached
    gen = torch.Generator().manual_seed(0)
    m2 = decorate(pykan_model(tmp_path, [2, 3, 1]), gen)
    s2 = sample_edges(m2, data)
    assert bool(s2.masked[s2.row(0, 0, 1)]) and int(s2.masked.sum()) == 1  # the masked numeric edge
    assert not bool(s2.masked[s2.row(0, 1, 0)])  # the symbolic edge is live
    assert torch.count_nonzero(s2.y[s2.row(0, 0, 1)]) == 0


def test_edge_samples_round_trip(tmp_path):
    s = sample_edges(KAN([2, 2, 1]), (x_data(40, 2, dtype=torch.float32), torch.zeros(40, 1)), n_points=7)
    s.save(tmp_path / "s.json")
    t = EdgeSamples.load(tmp_path / "s.json")
    assert t.index == s.index and torch.allclose(t.y, s.y.double()) and torch.equal(t.masked, s.masked)
    assert copy.copy(t).family == "zoo"


# ---------------------------------------------------------------- activations / partial dependence
def test_prelu_channels_sampled_on_observed_range():
    from inspect_kit.kan.activations import sample_activations

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.PReLU(4), nn.Linear(4, 1))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([0.1, -0.5, 0.9, 0.3]))
    x = torch.randn(300, 3)
    with assert_untouched(m):
        s = sample_activations(m, (x, torch.zeros(300, 1)), n_points=31, samples=None)
    pre = m[0](x).detach()
    assert s.labels[2] == "1 (PReLU) channel 2" and s.x.shape == (4, 31)
    for c in range(4):
        assert torch.isclose(s.x[c, 0], pre[:, c].min()) and torch.isclose(s.x[c, -1], pre[:, c].max())
        ref = F.prelu(s.x[c][:, None], m[1].weight.detach()[c : c + 1])[:, 0]
        assert torch.allclose(s.y[c], ref, atol=TOL)
        assert set(s.x_obs[c].tolist()) <= set(pre[:, c].tolist())


def test_karat_heads_and_rational():
    from inspect_kit.kan.activations import sample_activations
    from inspect_kit.zoo import build

    v = build("vit", attention="fourier_karat", depth=1, heads=2, dim=8)
    x = torch.randn(16, 64)
    seen = []
    h = v.blocks[0].attn.attn_fn.register_forward_hook(lambda mod, a, o: seen.append(a[0].detach()))
    v(x)
    h.remove()
    with assert_untouched(v):
        s = sample_activations(v, (x, torch.zeros(16)), n_points=21)
    fn = v.blocks[0].attn.attn_fn
    for head in range(2):
        r = s.row(0, head, 0)
        scores = seen[0][:, head]
        assert torch.isclose(s.x[r, 0], scores.min()) and torch.isclose(s.x[r, -1], scores.max())
        assert torch.allclose(s.y[r], fn.function(head, s.x[r]), atol=TOL)
    mlp = build("mlp", sizes=(3, 5, 1), activation="rational")
    s2 = sample_activations(mlp, (torch.randn(50, 3), torch.zeros(50, 1)))
    assert s2.labels == ["layers.1 (Rational)"]
    assert torch.allclose(s2.y[0], mlp.layers[1](s2.x[0]), atol=TOL)


def test_partial_dependence_of_linear_model():
    from inspect_kit.kan.activations import partial_dependence

    lin = nn.Linear(3, 2).double()
    x = x_data(101, 3)
    s = partial_dependence(lin, (x, torch.zeros(101, 2)), n_points=11)
    med = x.median(0).values
    W, b = lin.weight.detach(), lin.bias.detach()
    for k in range(2):
        for i in range(3):
            xs, ys = s.curve(0, k, i)
            others = sum(W[k, m] * med[m] for m in range(3) if m != i)
            assert torch.allclose(ys, W[k, i] * xs + others + b[k], atol=1e-12)
            assert torch.isclose(xs[0], x[:, i].min()) and torch.isclose(xs[-1], x[:, i].max())


def test_pykan_pruned_inputs_select_columns(tmp_path):
    m = kan.MultKAN(width=[3, 4, 1], grid=5, k=3, seed=0, auto_save=False, ckpt_path=str(tmp_path))
    m2 = m.prune_input(active_inputs=[0, 2], log_history=False)  # float32: pykan rebuilds in the default
    a = adapter_for(m2)
    x = x_data(60, 3, dtype=torch.float32)
    assert a.widths[0] == 2
    assert torch.allclose(a.forward_from_edges(x), m2(x), atol=TOL, rtol=0)
    assert torch.equal(a.layer_inputs(x)[0], x[:, [0, 2]])


def test_zoo_repeated_knots_follow_zoo_convention():
    m = KAN([3, 3, 1], seed=1).double()
    x = x_data(200, 3)
    m.update_grid(x)
    with torch.no_grad():  # a repeated interior knot: the zoo drops 0-denominator terms
        m.layers[0].grid[2, 5] = m.layers[0].grid[2, 4]
    a = adapter_for(m)
    out = a.forward_from_edges(x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, m(x), atol=TOL, rtol=0)


def test_pykan_repeated_knots_follow_pykan_convention(tmp_path):
    m = pykan_model(tmp_path, [3, 3, 1])
    with torch.no_grad():  # pykan zeroes a NaN basis value (nan_to_num), unlike the zoo
        m.act_fun[0].grid[2, 5] = m.act_fun[0].grid[2, 4]
    x = x_data(200, 3)
    assert torch.allclose(adapter_for(m).forward_from_edges(x), m(x), atol=TOL, rtol=0)


def test_pykan_mult_node_network_composes_to_its_own_forward(tmp_path):
    """A real MultKAN [2, [0, 1], 1] (one multiplication node) whose edges are pykan symbolic
    functions with non-trivial affines, plus node/sub-node affines: the composed formula (edge
    route only) must equal pykan's own forward on fresh points."""
    from analyses.symbolic import formula as fm
    from analyses.symbolic.api import symbolic

    gen = torch.Generator().manual_seed(1)
    m = pykan_model(tmp_path, [2, [0, 1], 1])
    for l, i, j, fun, aff in [(0, 0, 0, "sin", [1.3, 0.2, 0.9, 0.1]), (0, 1, 1, "exp", [0.7, -0.1, 1.1, 0.3]),
                              (0, 1, 0, "0", None), (0, 0, 1, "0", None),
                              (1, 0, 0, "x^2", [0.8, 0.4, 1.2, -0.5])]:
        m.fix_symbolic(l, i, j, fun, fit_params_bool=False, verbose=False, log_history=False)
        if aff is not None:
            m.symbolic_fun[l].affine.data[j, i] = torch.tensor(aff)
    random_node_affines(m, gen)
    X = x_data(600, 2, scale=1.0)
    with torch.no_grad():
        Y = m(X)
    with assert_untouched(m):
        res = symbolic(m, (X, Y), library=["x", "x^2", "sin", "exp"], structure=False,
                       snap=False, progress=False)
    funcs = {(e["layer"], e["out"], e["in"]): e["function"] for e in res.edges
             if not e["masked"] and e["function"] != "0"}
    assert funcs == {(0, 0, 0): "sin", (0, 1, 1): "exp", (1, 0, 0): "x^2"}
    Z = x_data(200, 2, seed=5, scale=1.0)
    with torch.no_grad():
        ref = m(Z).reshape(-1)
    got = fm.evaluate(res.sympy()[0], fm.input_symbols(2), Z)
    torch.testing.assert_close(got, ref, rtol=1e-7, atol=1e-7)
