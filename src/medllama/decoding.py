"""Sequences that decode together: one forward pass per step for the whole batch, rows joining and leaving
between steps.

The batch keeps every layer's keys/values in one `DynamicCache` (with spare columns, so that a step writes
in place rather than copying the cache), columns aligned on the right: a row that
joins is prefilled on its own (its prompt once), then left-padded (masked, zero keys/values) to the
batch's length and appended; a row that leaves is dropped, and columns no remaining row uses are cut.
Each row carries its own positions, so padding never shifts a row's rotary positions and a row's tokens
do not depend on who shares its batch. Rows may start from keys/values computed once for a prefix they
share (the template and instruction of an evaluation prompt). Used by the server's engine (requests join
between steps) and by evaluation's generation (finished questions make room for the next ones).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None


def pick(logits: torch.Tensor, samplings: list[Sampling], steps: list[int]) -> list[int]:
    """The next token of each row: argmax where greedy; else a draw from the temperature/top-p
    distribution. A seeded row's draw depends only on (seed, step), never on its batch neighbours."""
    tokens = logits.argmax(-1).tolist()
    for row, (s, step) in enumerate(zip(samplings, steps)):
        if s.temperature == 0:
            continue
        probs = (logits[row].float() / s.temperature).softmax(-1)
        if s.top_p < 1.0:
            ordered, order = probs.sort(descending=True)
            drop = ordered.cumsum(-1) - ordered >= s.top_p  # the smallest head reaching top_p stays
            probs = probs.scatter(-1, order[drop], 0.0)
            probs = probs / probs.sum()
        draw = random.Random(f"{s.seed}:{step}").random() if s.seed is not None else random.random()
        tokens[row] = min(int(torch.searchsorted(probs.cumsum(-1), torch.tensor(draw))), probs.numel() - 1)
    return tokens


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop string (or of a multi-byte character)."""
    if text.endswith("\ufffd"):
        return len(text) - len(text.rstrip("\ufffd"))
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)


class DecodeBatch:
    """The rows decoding now; `join`, `step` and `keep` are called from one thread."""

    def __init__(self, model: torch.nn.Module, pad_id: int = 0):
        self.model = model
        self.pad_id = pad_id
        self.device = next(model.parameters()).device
        self.cache = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)  # 1 = a real token's column
        self.positions = torch.zeros(0, dtype=torch.long, device=self.device)  # each row's next position

    def __len__(self) -> int:
        return self.mask.shape[0]

    def join(self, prompts: list[list[int]], prefix_cache=None, prefix_len: int = 0) -> torch.Tensor:
        """Prefill new rows (appended at the end) and return their next-token logits [n, vocab]. With a
        prefix cache, every prompt starts with those `prefix_len` tokens and only the rest is run."""
        rest = [p[prefix_len:] for p in prompts]
        width = max(len(p) for p in rest)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in rest], device=self.device)
        own = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in rest], device=self.device)
        mask = torch.cat([torch.ones((len(rest), prefix_len), dtype=torch.long, device=self.device), own], 1)
        cache = repeat_rows(self.model, prefix_cache, len(rest)) if prefix_cache is not None else new_cache(self.model)
        positions = (prefix_len + own.cumsum(1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                         logits_to_keep=1)
        self._append(out.cache, mask, torch.tensor([len(p) for p in prompts], device=self.device))
        return out.logits[:, -1]

    def step(self, tokens: list[int]) -> torch.Tensor:
        """Feed each row its last chosen token; the next-token logits [rows, vocab]."""
        ones = torch.ones((len(self), 1), dtype=torch.long, device=self.device)
        self.mask = torch.cat([self.mask, ones], 1)
        out = self.model(input_ids=torch.tensor(tokens, device=self.device)[:, None], attention_mask=self.mask,
                         position_ids=self.positions[:, None], cache=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.cache
        self.positions = self.positions + 1
        return out.logits[:, -1]

    def keep(self, rows: list[int]) -> None:
        """Only these rows stay, in this order; columns no remaining row uses are cut."""
        if rows == list(range(len(self))):
            return
        if not rows:
            self.__init__(self.model, self.pad_id)
            return
        index = torch.tensor(rows, device=self.device)
        self.mask, self.positions = self.mask[index], self.positions[index]
        start = int(self.mask.any(0).long().argmax())
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[index, :, start:], layer.values[index, :, start:]

    def _append(self, cache, mask: torch.Tensor, positions: torch.Tensor) -> None:
        if self.cache is None:
            self.cache, self.mask, self.positions = cache, mask, positions
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)], 0)
        self.positions = torch.cat([self.positions, positions])
        for mine, new in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(new.keys, width)], 0)
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(new.values, width)], 0)


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros before the columns of a mask [rows, cols] or keys/values [rows, heads, cols, dim]."""
    missing = width - (t.shape[1] if t.dim() == 2 else t.shape[2])
    if missing == 0:
        return t
    pad = list(t.shape)
    pad[1 if t.dim() == 2 else 2] = missing
    return torch.cat([t.new_zeros(pad), t], 1 if t.dim() == 2 else 2)


def new_cache(model: torch.nn.Module):
    """An empty cache for the model whose full-attention layers keep spare columns (`_spare_columns_layer`)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    spare = _spare_columns_layer()
    cache.layers = [spare() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


@functools.cache
def _spare_columns_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    class SpareColumnsLayer(DynamicLayer):
        """Keys/values [rows, heads, columns, dim] written into a buffer with spare columns on the right, so that a
        decode step writes its column in place: DynamicLayer concatenates, copying every row's whole past at each
        step (half a decode step's time on CPU). A buffer is made anew when the batch replaces its keys (rows
        joining or leaving) or its spare columns run out."""

        SPARE = 64
        buffers = None  # (keys buffer, values buffer, the keys view last handed out)

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            used, new = (self.keys.shape[-2] if self.keys.dim() == 4 else 0), key_states.shape[-2]
            if self.buffers is None or self.keys is not self.buffers[2] or self.buffers[0].shape[-2] < used + new:
                shape = (*key_states.shape[:2], used + new + self.SPARE, key_states.shape[-1])
                keys, values = key_states.new_empty(shape), value_states.new_empty(shape)
                if used:
                    keys[:, :, :used], values[:, :, :used] = self.keys, self.values
                self.buffers = (keys, values, None)
            keys, values, _ = self.buffers
            keys[:, :, used:used + new], values[:, :, used:used + new] = key_states, value_states
            self.keys, self.values = keys[:, :, :used + new], values[:, :, :used + new]
            self.buffers = (keys, values, self.keys)
            return self.keys, self.values

    return SpareColumnsLayer


def repeat_rows(model: torch.nn.Module, prefix_cache, rows: int):
    """A fresh cache holding the prefix once per row (the rows then append their own tokens)."""
    cache = new_cache(model)
    for layer_idx, layer in enumerate(prefix_cache.layers):
        cache.update(layer.keys.expand(rows, -1, -1, -1).contiguous(),
                     layer.values.expand(rows, -1, -1, -1).contiguous(), layer_idx)
    return cache
