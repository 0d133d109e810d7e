"""Per-step time of the Gemma 3 270M RM recipe (configs/train/cpu-gemma3-270m.yaml) outside Ray: the
trainer's own pieces (tokenize_pair, collate_packed_pairs, packed_pair_rewards, bradley_terry_loss,
AdamW; embedding frozen, gradient checkpointing, fp32), wall and process CPU time per step. On a
shared machine process CPU time / threads is the steadier estimate of a quiet machine's wall time.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/gemma_step_time.py PAIRS_PER_STEP STEPS MAX_LENGTH
(reads train pairs from runs/quickstart/bench; benchmarks/RESULTS.md)"""
import os, sys, time, json, resource
import torch, pandas as pd
from fcrm_ray.models import init_reward_model
from fcrm_ray.train.data import tokenize_pair
from fcrm_ray.train.packing import collate_packed_pairs, packed_pair_rewards
from fcrm_ray.train.loss import bradley_terry_loss
from fcrm_ray.train.loop import disable_dropout

mb, steps, max_len = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2); torch.manual_seed(0)
model, tok = init_reward_model("pkg:gemma3-270m", note=lambda m: None)
disable_dropout(model)
model.get_input_embeddings().requires_grad_(False)
model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False}); model.config.use_cache = False
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
d = pd.read_parquet("runs/quickstart/bench/pairs.parquet"); d = d[d.split == "train"].sample(mb * steps * 2, random_state=0)
rows = [r for r in (tokenize_pair(r, tok, max_len, 32, 768) for r in d.to_dict("records")) if r["status"] == "ok"][:mb * steps]
print("packed tokens per pair (mean):", sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows) / len(rows), flush=True)
for s in range(steps):
    batch = rows[s * mb:(s + 1) * mb]
    w0, c0 = time.time(), time.process_time()
    b = collate_packed_pairs(batch, tok.pad_token_id)
    rc, rr = packed_pair_rewards(model, model, b, torch.device("cpu"))
    loss = bradley_terry_loss(rc.float(), rr.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)
    w, c = time.time() - w0, time.process_time() - c0
    print(json.dumps({"step": s + 1, "pairs": mb, "tokens_run": int(b["n_tokens"]), "wall_s": round(w, 1),
                      "cpu_s": round(c, 1), "loss": round(loss.item(), 4), "load": os.getloadavg()[0]}), flush=True)
print("max RSS GiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
