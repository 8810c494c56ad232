"""How much the factorization attention's output and gradients change with NMF steps and
rank, under each option; writes the table into docs/model.md.

Setting: an SEF-RGB model (seed 0) turns a 4-clip batch of the synthetic face clip (72 bpm
pulse) into the BVP head's embedding F (4, 16, 180, 7, 7), float64. For each option set,
the head's attention fusion F' = F + IN((F - min F + 1)(att - min att + 1)) is computed
with the clip's pulse as the target, and the gradient of <F', G> (G fixed random) with
respect to F. Reported: the relative change ||a - a_ref|| / ||a_ref|| of the attention
term a = F' - F (the residual F itself never changes) and of that gradient when steps
move away from 4 (1, 2, 8, 16) or rank away from 1 (2, 4, 8); the largest over those
settings. Rounding noise is ~1e-15.

    python benchmarks/factorization_sensitivity.py            # prints and updates docs/model.md
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import torch

# this checkout's packages first, not an installed copy of the project
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrphys.model import MMRPhys, variant
from mmrphys.model.blocks import front_end
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.summary import synthetic_clip

DOCS = Path(__file__).resolve().parents[1] / "docs" / "model.md"
START, END = "<!-- factorization-table:start -->", "<!-- factorization-table:end -->"
STEPS, RANKS = (1, 2, 8, 16), (2, 4, 8)

OPTIONS = [
    ("FSAM", dict(constrained=False)),
    ("FSAM", dict(constrained=False, layout="time_aligned")),
    ("FSAM", dict(constrained=False, bases_init="seeded")),
    ("FSAM", dict(constrained=False, bases_init="seeded", layout="time_aligned")),
    ("TSFM", dict()),
    ("TSFM", dict(layout="time_aligned")),
    ("TSFM", dict(bases_init="seeded", layout="time_aligned")),
    ("TSFM", dict(constraint="target_harmonics")),
    ("TSFM", dict(constraint="target_harmonics", layout="time_aligned")),
    ("TSFM", dict(constraint="target_harmonics", bases_init="seeded")),
    ("TSFM", dict(constraint="target_harmonics", bases_init="seeded", layout="time_aligned")),
    ("TSFM", dict(constraint="rbf", bases_init="seeded")),
    ("TSFM", dict(constraint="rbf", bases_init="seeded", layout="time_aligned")),
]


def embedding_and_target() -> tuple[torch.Tensor, torch.Tensor, MMRPhys]:
    """The BVP head's pre-attention embedding for a synthetic batch, and its pulse target."""
    torch.manual_seed(0)
    config = variant("SEF", modality="rgb", dropout=0.0)
    model = MMRPhys(config).double().eval()
    clip = torch.cat([synthetic_clip(config, seed=s) for s in range(4)]).double()
    with torch.no_grad():
        f = model.rppg_head.conv_layer(model.bvp_feature_extractor(front_end(clip)))
    t = torch.arange(config.frames, dtype=torch.float64) / 30.0
    g = torch.Generator().manual_seed(1)
    target = torch.sin(2 * math.pi * 1.2 * t).expand(4, -1) + 0.3 * torch.randn(4, config.frames, generator=g, dtype=torch.float64)
    return f, target, model


def fused_and_grad(model, f, target, attention, weights):
    """F' of the head with `attention` in place of its module, and d<F', weights>/dF."""
    head = model.rppg_head
    head.fsam = attention
    x = f.clone().requires_grad_(True)
    out = head.attend(x, target)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return (out - x).detach(), grad


def change(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def measure() -> list[dict]:
    f, target, model = embedding_and_target()
    weights = torch.randn(f.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.manual_seed(0)
    template = FeaturesFactorizationModule(16).double()

    def run(kind, options, steps, rank):
        module = FeaturesFactorizationModule(16, steps=steps, rank=rank, **options).double()
        module.load_state_dict(template.state_dict())
        return fused_and_grad(model, f, target if kind == "TSFM" else None, module, weights)

    rows = []
    for kind, options in OPTIONS:
        base_out, base_grad = run(kind, options, 4, 1)
        again_out, _ = run(kind, options, 4, 1)
        by_steps = [run(kind, options, s, 1) for s in STEPS]
        by_rank = [run(kind, options, 4, r) for r in RANKS]
        rows.append(
            dict(
                kind=kind,
                layout=options.get("layout", "reference"),
                constraint="-" if kind == "FSAM" else options.get("constraint", "target"),
                bases=options.get("bases_init", "reference"),
                repeat=change(again_out, base_out),
                steps_out=max(change(o, base_out) for o, _ in by_steps),
                steps_grad=max(change(g, base_grad) for _, g in by_steps),
                rank_out=max(change(o, base_out) for o, _ in by_rank),
                rank_grad=max(change(g, base_grad) for _, g in by_rank),
            )
        )
    return rows


def verdict(value: float) -> str:
    return "no" if value < 1e-9 else ("barely" if value < 1e-3 else "yes")


def table(rows: list[dict]) -> str:
    lines = [
        "| attention | layout | constraint | bases | attention term vs steps | gradient vs steps | attention term vs rank | gradient vs rank | steps matter? | rank matters? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['layout']} | {r['constraint']} | {r['bases']} | {r['steps_out']:.1e} | "
            f"{r['steps_grad']:.1e} | {r['rank_out']:.1e} | {r['rank_grad']:.1e} | "
            f"{verdict(max(r['steps_out'], r['steps_grad']))} | {verdict(max(r['rank_out'], r['rank_grad']))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown file holding the table markers")
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args()
    text = table(measure())
    print(text)
    if args.write:
        doc = args.docs.read_text()
        if START not in doc or END not in doc:
            raise SystemExit(f"{args.docs}: missing the markers {START} / {END}")
        doc = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{text}\n{END}", doc, flags=re.S)
        args.docs.write_text(doc)
        print(f"table written to {args.docs}")


if __name__ == "__main__":
    main()
