"""`ray job submit` entrypoint for reward-model training; the same recipe as `fcrm train`.

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env jobs/runtime_env_gpu.yaml \
        -- python jobs/train_rm.py --config configs/train/qwen3-8b.yaml --out /mnt/shared/rm-qwen3-8b \
           data.train_path=/mnt/shared/pairs ckpt.storage_path=s3://bucket/fcrm/train
"""

import sys

from fcrm_ray.cli import main  # one dispatcher: a bad config exits 2 with a message naming the key

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
