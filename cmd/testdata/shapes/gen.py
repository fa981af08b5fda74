#!/usr/bin/python3
"""Makes small DLRM checkpoints of other shapes than criteo-18k, and PyTorch's
fp32 NE/AUC for them (via ../../../../shared/bench/torch_peer.py's reference
model), for cmd's TestOtherShapes. Run from this directory with /usr/bin/python3
(python3-torch, python3-sklearn). Output: dot.pt, itself.pt, data.npz, expected.json."""
import json, subprocess, sys
import numpy as np, torch

def make(path, itself, bot, top, tables, rows, seed):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    d = bot[-1]
    for t in range(tables):
        sd[f'emb_l.{t}.weight'] = torch.rand(rows[t], d, generator=g) - 0.5
    F = tables + 1
    top = [d + (F * (F + 1) // 2 if itself else F * (F - 1) // 2)] + top
    for name, dims in (('bot_l', bot), ('top_l', top)):
        for i in range(len(dims) - 1):
            sd[f'{name}.{2*i}.weight'] = torch.randn(dims[i+1], dims[i], generator=g) * np.sqrt(2 / (dims[i] + dims[i+1]))
            sd[f'{name}.{2*i}.bias'] = torch.randn(dims[i+1], generator=g) * 0.1
    # Plain state dict for one, the dlrm --save-model dict for the other.
    torch.save({'state_dict': sd, 'nepochs': 1} if itself else sd, path)

rows = [7, 50, 300, 3, 20]
make('dot.pt', False, [13, 32, 8], [24, 1], 5, rows, 1)
make('itself.pt', True, [13, 16, 8], [16, 8, 1], 5, rows, 2)
rng = np.random.default_rng(3)
n = 600
X_int = rng.integers(-2, 500, size=(n, 13)).astype(np.int64)
X_cat = np.stack([rng.integers(0, r, size=n) for r in rows], axis=1).astype(np.int32)
y = (rng.random(n) < 0.3).astype(np.int8)
np.savez_compressed('data.npz', X_int=X_int, X_cat=X_cat, y=y)
peer = '../../../../shared/bench/torch_peer.py'
out = {}
for name, extra in (('dot.pt', []), ('itself.pt', ['--itself'])):
    r = json.loads(subprocess.check_output([sys.executable, peer, name, 'data.npz', '--json'] + extra))
    fp32 = r['rows'][0]
    out[name] = {'ne': fp32['ne'], 'auc': fp32['auc'], 'logloss': fp32['logloss'], 'n': r['n']}
json.dump(out, open('expected.json', 'w'), indent=1)
print(out)
