"""`ray job submit` entrypoint of the evaluations (`fcrm eval pairwise|bon|robustness`).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/eval_rm.py pairwise --config configs/eval/pairwise.yaml \
        --model /mnt/cluster_storage/fcrm/rm-qwen3-8b --data /mnt/cluster_storage/fcrm/bench \
        --out /mnt/cluster_storage/fcrm/eval/pairwise backend=ray model.device=cuda model.dtype=bfloat16 \
        actors.num_actors=8 actors.num_gpus_per_actor=1

The first word picks the evaluation (default `pairwise`); the rest is that command's arguments.
"""

import sys

from fcrm_ray.cli import main

KINDS = ("pairwise", "bon", "robustness")

if __name__ == "__main__":
    argv = sys.argv[1:]
    kind = argv.pop(0) if argv and argv[0] in KINDS else "pairwise"
    sys.exit(main(["eval", kind, *argv]))
