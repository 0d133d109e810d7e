"""`ray job submit` entrypoint of `fcrm serve` (same config, same code as the CLI).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/serve_rm.py --config configs/serve.yaml models.fcrm-rm.path=/mnt/cluster_storage/rm models.fcrm-rm.device=cuda \
        models.fcrm-rm.ray_actor_options.num_gpus=1 ray_address=auto blocking=false

With `blocking=false` the job returns once the application is deployed; Serve keeps it running on
the cluster (`serve status`, `serve shutdown`). For declarative deployments prefer
`fcrm serve --emit-config FILE` + `serve deploy FILE`.
"""

import sys

from fcrm_ray.config import ConfigError
from fcrm_ray.serve.app import main
from fcrm_ray.toolcall.schema import SchemaError

if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:], prog="jobs/serve_rm.py"))
    except (ConfigError, SchemaError, FileNotFoundError) as e:  # a bad config is a message, not a traceback
        print(f"jobs/serve_rm.py: error: {e}", file=sys.stderr)
        sys.exit(2)
