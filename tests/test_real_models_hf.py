"""HuggingFace BERT, GPT-2 and ViT built from tiny configs, eager and sdpa attention, through the
view-based analyses (hessian, landscape, lmc) and ESD, each against an independent truth: the
model's own loss from ``labels=``, a power iteration on ``torch.autograd.functional.hvp`` of that
loss, and WeightWatcher."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import functional_call

from inspect_kit.testing import assert_untouched

transformers = pytest.importorskip("transformers")
warnings.filterwarnings("ignore", message=".*(bos|eos)_token_id.*")

IDS = torch.randint(0, 50, (6, 8), generator=torch.Generator().manual_seed(0))
MASK = torch.ones(6, 8, dtype=torch.long)
MASK[:3, 6:] = 0


def _bert(attn: str, seed: int = 0):
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=16, num_labels=3)
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(cfg).eval()
    return model, {"input_ids": IDS, "attention_mask": MASK,
                   "labels": torch.tensor([0, 1, 2, 0, 1, 2])}


def _gpt2(attn: str, seed: int = 0):
    cfg = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=16,
                                  bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(cfg).eval(), {"input_ids": IDS, "labels": IDS}


def _vit(attn: str, seed: int = 0):
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                                 num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32, num_labels=10)
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1)
    return (transformers.ViTForImageClassification(cfg).eval(),
            {"pixel_values": torch.randn(6, 1, 8, 8, generator=g),
             "labels": torch.randint(0, 10, (6,), generator=g)})


MODELS = {"bert": _bert, "gpt2": _gpt2, "vit": _vit}
CASES = [(m, a) for m in MODELS for a in ("eager", "sdpa")]


def _own_loss(model, batch) -> float:
    with torch.no_grad():
        return float(model(**batch).loss)


def _arpack_top_eigenvalue(model, batch) -> float:
    """Largest-magnitude Hessian eigenvalue of the model's own loss by ARPACK (``scipy eigsh``)
    on plain autograd HVPs (a path that shares nothing with the kit: no view, no Lanczos)."""
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigsh
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = [n for n, p in model.named_parameters()]
    twin = model.double()
    params = [p.detach().clone().requires_grad_(True) for p in twin.parameters()]
    sizes = [p.numel() for p in params]
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            loss = functional_call(twin, dict(zip(names, params)), (), batch).loss
            grads = torch.autograd.grad(loss, params, create_graph=True)

            def matvec(v):
                vs = torch.as_tensor(np.ravel(v)).split(sizes)
                hv = torch.autograd.grad(grads, params, [x.view_as(p) for x, p in zip(vs, params)],
                                         retain_graph=True, allow_unused=True)
                return torch.cat([torch.zeros(n, dtype=torch.float64) if h is None
                                  else h.reshape(-1) for h, n in zip(hv, sizes)]).numpy()

            n = sum(sizes)
            op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
            v0 = np.random.default_rng(0).standard_normal(n)
            val = eigsh(op, k=1, which="LM", tol=1e-10, v0=v0, return_eigenvectors=False)
    finally:
        model.float()
    return float(val[0])


@pytest.mark.parametrize("name,attn", CASES)
def test_landscape_centre_and_lmc_ends_equal_the_models_own_loss(name, attn):
    from analyses.landscape.api import landscape
    from analyses.lmc.api import lmc

    a, batch = MODELS[name](attn, 0)
    b, _ = MODELS[name](attn, 1)
    with assert_untouched(a), assert_untouched(b):
        land = landscape(a, batch, dims=1, steps=3, progress=False)
        path = lmc(a, b, batch, steps=3, refine=False, progress=False)
    assert land.center_loss == pytest.approx(_own_loss(a, batch), rel=1e-5)
    assert path.loss["data"][0] == pytest.approx(_own_loss(a, batch), rel=1e-5)
    assert path.loss["data"][-1] == pytest.approx(_own_loss(b, batch), rel=1e-5)


@pytest.mark.parametrize("name,attn", CASES)
def test_hessian_top_eigenvalue_equals_arpack_on_plain_autograd(name, attn):
    from analyses.hessian.api import hessian

    model, batch = MODELS[name](attn, 0)
    with assert_untouched(model):
        res = hessian(model, batch, top_k=1, which="magnitude", trace=False, dtype="float64",
                      tol=1e-9, progress=False)
    truth = _arpack_top_eigenvalue(model, batch)
    assert res.eigenvalues[0] == pytest.approx(truth, rel=1e-6)


def test_eager_and_sdpa_give_the_same_hessian():
    from analyses.hessian.api import hessian

    vals = []
    for attn in ("eager", "sdpa"):
        model, batch = _bert(attn, 3)
        vals.append(hessian(model, batch, top_k=2, trace=False, dtype="float64",
                            progress=False).eigenvalues)
    torch.testing.assert_close(torch.as_tensor(vals[0]), torch.as_tensor(vals[1]), rtol=1e-8,
                               atol=1e-10)


def test_model_loss_option_uses_the_models_own_loss():
    from inspect_kit.view import ModelView

    model, batch = _gpt2("eager", 2)
    own = _own_loss(model, batch)
    assert ModelView(model, batch, loss="model").loss() == pytest.approx(own, rel=1e-6)
    assert ModelView(model, batch).loss() == pytest.approx(own, rel=1e-6)  # causal shift


def test_esd_on_bert_equals_weightwatcher():
    from analyses.esd.api import esd

    cfg = transformers.BertConfig(vocab_size=120, hidden_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=128,
                                  max_position_embeddings=64)
    torch.manual_seed(0)
    bert = transformers.BertModel(cfg).eval()
    with assert_untouched(bert):
        res = esd(bert, method="compat", backend="weightwatcher", mp_fit=False, detx=False,
                  progress=False)
    cmp = res.comparison
    assert len(cmp) >= 12
    assert max(c["delta_alpha"] for c in cmp) <= 1e-8 and all(c["same_xmin"] for c in cmp)


def test_esd_on_vit_patch_conv_and_linears_equals_weightwatcher():
    from analyses.esd.api import esd

    cfg = transformers.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                                 num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=128, num_labels=10)
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(cfg).eval()
    with assert_untouched(vit):
        res = esd(vit, method="compat", backend="weightwatcher", mp_fit=False, detx=False,
                  progress=False)
    cmp = [c for c in res.comparison if c["delta_alpha"] == c["delta_alpha"]]
    assert len(cmp) >= 12
    assert max(c["delta_alpha"] for c in cmp) <= 1e-8 and all(c["same_xmin"] for c in cmp)


def test_esd_on_gpt2_conv1d_and_tied_head_equals_weightwatcher():
    """HF ``Conv1D`` projections (stored (in, out)) and the tied LM head: every matrix
    WeightWatcher analyses is a row here with the same alpha and xmin (compat mode); the head
    is reported as a Linear sharing the embedding's spectrum."""
    from analyses.esd.api import esd

    cfg = transformers.GPT2Config(vocab_size=120, n_embd=64, n_layer=2, n_head=2,
                                  n_positions=64)
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(cfg).eval()
    with assert_untouched(gpt2):
        res = esd(gpt2, method="compat", backend="weightwatcher", mp_fit=False,
                  progress=False)
    cmp = res.comparison
    names = {c["name"] for c in cmp}
    assert {"transformer.h.1.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.weight",
            "transformer.wpe.weight", "lm_head.weight"} <= names
    assert all(c["delta_alpha"] == 0 and c["same_xmin"] for c in cmp)
    head = res.row("lm_head.weight")
    assert head["duplicate_of"] == "transformer.wte.weight" and head["kind"] == "linear"


@pytest.mark.parametrize("name,attn", CASES)
def test_weight_matching_permutations_keep_the_function(name, attn):
    """The permutation tracer follows HF modules (GPT-2's ``Conv1D`` = ``addmm``, its fused qkv
    split into equal chunks, the empty key/value cache concatenated): a random permutation of
    every traced group, heads included, leaves the logits unchanged."""
    from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec

    model, batch = MODELS[name](attn)
    x = batch.get("input_ids", batch.get("pixel_values"))
    with assert_untouched(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = permutation_spec(model, x[:4])
    sizes = sorted(g.size for g in spec.groups)
    assert 2 in sizes and 16 in sizes, sizes  # the two heads and the residual stream move
    state = model_state(model)
    twin = load_state_copy(model, spec.apply(state, spec.random(1)))
    with torch.no_grad():
        assert (model(x).logits - twin(x).logits).abs().max() < 1e-5
