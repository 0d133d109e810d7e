"""`ray job submit` entrypoint for reward-model training; the same recipe as `fcrm train`.

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env jobs/runtime_env_gpu.yaml \
        -- python jobs/train_rm.py --config configs/train/qwen3-8b.yaml --out /mnt/shared/rm-qwen3-8b \
           data.train_path=/mnt/shared/pairs ckpt.storage_path=s3://bucket/fcrm/train
"""

import sys

from fcrm_ray.config import ConfigError
from fcrm_ray.train.recipe import main

if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:], prog="jobs/train_rm.py"))
    except ConfigError as e:
        print(f"jobs/train_rm.py: error: {e}", file=sys.stderr)
        sys.exit(2)
