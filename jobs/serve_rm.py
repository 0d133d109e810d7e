"""`ray job submit` entrypoint of `fcrm serve` (same config, same code as the CLI).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/serve_rm.py --config configs/serve.yaml models.fcrm-rm.path=/mnt/cluster_storage/rm models.fcrm-rm.device=cuda \
        models.fcrm-rm.ray_actor_options.num_gpus=1 ray.address=auto blocking=false

With `blocking=false` the job returns once the application is deployed; Serve keeps it running on
the cluster (`serve status`, `serve shutdown`). For declarative deployments prefer
`fcrm serve --emit-config FILE` + `serve deploy FILE`.
"""

import sys

from fcrm_ray.cli import main  # one dispatcher: a bad config exits 2 with a message naming the key

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
