"""``inspect-kit train ZOO_NAME --data DATA --out CKPT``: train a zoo model, write a kit checkpoint.

The checkpoint records the zoo architecture and kwargs, so analyses load it without naming the
model; ``--snapshot-every N`` stores the weights every N epochs as its trajectory.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..errors import OptionError
from .common import add_progress_arg, parse_json_kwargs

NAME = "train"
HELP = "train a zoo model (kan, mlp, vit, modadd) on data and save a kit checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("zoo_name", metavar="ZOO_NAME", help="zoo model: kan, mlp, vit or modadd")
    parser.add_argument("--data", required=True, metavar="DATA",
                        help="digits, wine, formula:NAME, modadd:P[:FRAC], file.pt/.npz with x "
                             "and y, or "
                             "module:callable (float targets: regression/MSE, integer: classes)")
    parser.add_argument("--model-kwargs", metavar="JSON", default=None,
                        help='JSON object of model kwargs, e.g. \'{"width": [2, 5, 1]}\' (sizes '
                             "are inferred from the data when omitted)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (L-BFGS: steps); default per model, e.g. 20 for a KAN on a "
                             "formula, 20 for an MLP on digits")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default per model)")
    parser.add_argument("--optimizer", choices=("adam", "adamw", "lbfgs"), default=None,
                        help="optimiser (default per model: lbfgs for a KAN on regression, adamw "
                             "for modadd)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="weight decay (adam: L2 penalty; adamw: decoupled; default per model: "
                             "0, modadd 1.0)")
    parser.add_argument("--batch-size", type=int, default=None, help="Adam mini-batch size")
    parser.add_argument("--seed", type=int, default=0, help="seed for init and shuffling")
    add_progress_arg(parser)
    parser.add_argument("--snapshot-every", type=int, default=None, metavar="N",
                        help="keep the weights every N epochs (and at 0 and the end) as the "
                             "checkpoint's trajectory")
    parser.add_argument("--out", required=True, metavar="CKPT",
                        help="checkpoint to write (.pt; .safetensors without --snapshot-every)")
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="also write the training history as JSON")


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import save_checkpoint
    from ..data import load_data
    from ..io import write_json
    from ..zoo import ZOO
    from ..zoo.train import train_zoo

    if args.zoo_name not in ZOO:
        raise OptionError(f"unknown zoo model {args.zoo_name!r}; use one of {', '.join(sorted(ZOO))}")
    model_kwargs = parse_json_kwargs(args.model_kwargs)
    if args.out.endswith(".safetensors") and args.snapshot_every:
        raise OptionError("--snapshot-every needs a .pt checkpoint (safetensors holds no "
                          "trajectory); change --out")
    if args.weight_decay is not None and args.weight_decay < 0:
        raise OptionError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    for opt in ("epochs", "snapshot_every", "batch_size"):
        value = getattr(args, opt)
        if value is not None and value < (0 if opt == "epochs" else 1):
            raise OptionError(f"--{opt.replace('_', '-')} must be positive, got {value}")
    data = load_data(args.data)
    _check_size(args.zoo_name, data, model_kwargs, args.seed)
    fit_kwargs = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr),
                                    ("optimizer", args.optimizer), ("batch_size", args.batch_size),
                                    ("weight_decay", args.weight_decay),
                                    ("snapshot_every", args.snapshot_every)) if v is not None}
    model, result = train_zoo(args.zoo_name, data, model_kwargs=model_kwargs, seed=args.seed,
                              progress=args.progress, **fit_kwargs)
    final = result.final
    extra = {"train": {"data": args.data, "seed": args.seed, **fit_kwargs,
                       "final": {k: v for k, v in final.items() if math.isfinite(v)},
                       "snapshot_epochs": result.snapshot_epochs}}
    save_checkpoint(model, args.out, trajectory=result.snapshots or None, extra=extra)
    if args.json:
        write_json(args.json, {"zoo": args.zoo_name, "data": args.data, "seed": args.seed,
                               "history": result.history, "snapshot_epochs": result.snapshot_epochs,
                               "seconds": result.seconds, "checkpoint": args.out})
    print(summary(args.zoo_name, args.data, final, result.seconds, args.out))
    return 0


def _check_size(name: str, data: Any, model_kwargs: dict[str, Any], seed: int) -> None:
    """Refuse a model whose weights, gradients and two Adam moments would not fit in memory,
    from a shape-only build (nothing allocated)."""
    from .. import zoo
    from ..limits import check_memory
    from ..preflight import declared_size, meta_build
    from ..zoo.train import zoo_kwargs

    kwargs = zoo_kwargs(name, data, model_kwargs, seed)
    ghost = meta_build(lambda: zoo.build(name, **kwargs), n_tensors=1000, source=f"zoo:{name}",
                       hint="lower the sizes in --model-kwargs", fallback=False)
    if ghost is not None:
        values, nbytes = declared_size(ghost)
        check_memory(4 * nbytes, f"training zoo:{name} with {values:,} parameters (weights, "
                     "gradients, two Adam moments)", "lower the sizes in --model-kwargs")


def summary(name: str, data: str, final: dict[str, float], seconds: float, out: str) -> str:
    """One line: model, data, epochs, final train/test metrics, time, checkpoint path."""
    parts = [f"trained {name} on {data}: {int(final.get('epoch', 0))} epochs in {seconds:.1f} s"]
    for split in ("train", "test"):
        if f"{split}_acc" in final:
            parts.append(f"{split} loss {final[f'{split}_loss']:.4g} acc {final[f'{split}_acc']:.4f}")
        elif f"{split}_loss" in final:
            mse = final[f"{split}_loss"]
            parts.append(f"{split} mse {mse:.4g} rmse {math.sqrt(max(mse, 0.0)):.4g}")
    return ", ".join(parts) + f" -> {out}"
