"""DVC stage `prepare`: read `base` and `prepare` params, write the sharded splits data/prepared/{train,test}/
and metrics/data.json."""

from ganpipe import params
from ganpipe.prepare import prepare
from ganpipe.stage import run_stage


def main() -> None:
    base = params.load("base")
    cfg = params.load("prepare")
    m = prepare(cfg, base.seed, "data/prepared", "metrics/data.json", progress=True)
    print(f"prepare: {m['train']['count']} train / {m['test']['count']} test images of shape {m['image_shape']}")


if __name__ == "__main__":
    run_stage(main)
