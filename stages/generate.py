"""DVC stage `generate`: draw generate.n_samples images from models/generator.keras into
data/generated/samples.npz, plus a sample grid, a per-class grid (conditional models) and a latent
interpolation strip under data/generated/plots/."""

from ganpipe import params, seeds
from ganpipe.generation import describe, generate, interpolation_strip, per_class_grid, sample_grid
from ganpipe.io import save_npz
from ganpipe.plots import save_png
from ganpipe.saving import load_model
from ganpipe.stage import run_stage

GENERATOR = "models/generator.keras"
PLOTS = "data/generated/plots"


def main() -> None:
    base = params.load("base")
    cfg = params.load("generate")
    seeds.exact_inference(base.seed)  # the same samples on every run, on a GPU too
    g = load_model(GENERATOR)
    info = describe(g, GENERATOR)
    x, y = generate(g, cfg.n_samples, base.seed, cfg.batch_size, path=GENERATOR)
    arrays = {"x": x} if y is None else {"x": x, "y": y}
    save_npz("data/generated/samples.npz", **arrays)
    save_png(f"{PLOTS}/samples.png", sample_grid(x, cfg.grid))
    save_png(f"{PLOTS}/interpolation.png", interpolation_strip(g, min(cfg.grid, 8), cfg.interpolation_steps, base.seed))
    if info.num_classes:
        save_png(f"{PLOTS}/per_class.png", per_class_grid(g, cfg.grid, base.seed))
    print(f"generate: {len(x)} samples of shape {x.shape[1:]}")


if __name__ == "__main__":
    run_stage(main)
