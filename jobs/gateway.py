"""`ray job submit` entrypoint of `fcrm gateway` (same config, same code as the CLI).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/gateway.py --config configs/gateway.yaml --upstream http://vllm.internal:8000/v1 \
        model.path=/mnt/cluster_storage/rm model.device=cuda model.ray_actor_options.num_gpus=1 \
        ray.address=auto blocking=false

With `blocking=false` the job returns once the application is deployed; Serve keeps it running
(`serve status`, `serve shutdown`). The upstream's key comes from the env var named by
`upstream.api_key_env` (set it in the runtime_env), never from the command line.
"""

import sys

from fcrm_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["gateway", *sys.argv[1:]]))
