"""`ray job submit` entrypoint of `fcrm generate` (same config, same code as the CLI).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/generate.py --config configs/generate/gpu.yaml --out /mnt/cluster_storage/fcrm/gen-1

Inside a job `RAY_ADDRESS` is set, so the pipeline joins the cluster instead of starting Ray.
Resubmitting the same command resumes: finished shards are skipped (see fcrm_ray.generate.run).
"""

import sys

from fcrm_ray.cli import main  # one dispatcher: a bad config exits 2 with a message naming the key

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
