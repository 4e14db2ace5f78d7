"""DVC stage `prepare`: read `base` and `prepare` params, write data/prepared/{train,test}.npz and metrics/data.json."""

from ganpipe import params
from ganpipe.prepare import prepare, write_prepared
from ganpipe.stage import run_stage


def main() -> None:
    base = params.load("base")
    cfg = params.load("prepare")
    prepared = prepare(cfg, seed=base.seed)
    write_prepared(prepared, "data/prepared", "metrics/data.json")
    m = prepared.metrics
    print(f"prepare: {m['train']['count']} train / {m['test']['count']} test images of shape {m['image_shape']}")


if __name__ == "__main__":
    run_stage(main)
