"""`ray job submit` entrypoint of `fcrm filter` (same config, same code as the CLI).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/filter_corpus.py --config configs/filter.yaml input.path=/mnt/cluster_storage/sft/ \
        --out /mnt/cluster_storage/fcrm/filter-1 model.device=cuda actors.num_gpus_per_actor=1 \
        actors.num_actors=8

Inside a job `RAY_ADDRESS` is set, so the pipeline joins the cluster. Resubmitting the same command
resumes: shards recorded in `<out>/manifest.json` are skipped.
"""

import sys

from fcrm_ray.cli import main  # one dispatcher: a bad config exits 2 with a message naming the key

if __name__ == "__main__":
    sys.exit(main(["filter", *sys.argv[1:]]))
