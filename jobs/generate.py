"""`ray job submit` entrypoint of `fcrm generate` (same config, same code as the CLI).

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
      --runtime-env jobs/runtime_env_gpu.yaml -- \
      python jobs/generate.py --config configs/generate/gpu.yaml output.dir=/mnt/cluster_storage/fcrm/gen-1

Inside a job `RAY_ADDRESS` is set, so the pipeline joins the cluster instead of starting Ray.
Resubmitting the same command resumes: finished shards are skipped (see fcrm_ray.generate.pipeline).
"""

import sys

from fcrm_ray.config import ConfigError
from fcrm_ray.generate.pipeline import main
from fcrm_ray.toolcall.schema import SchemaError

if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:], prog="jobs/generate.py"))
    except (ConfigError, SchemaError, FileNotFoundError) as e:  # a bad config is a message, not a traceback
        print(f"jobs/generate.py: error: {e}", file=sys.stderr)
        sys.exit(2)
