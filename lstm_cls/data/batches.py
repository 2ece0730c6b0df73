"""Batches gathered a whole batch at a time: a set (`WindowSet`, `CaseSet`) indexed by a batch of indices,
and the DataLoader that hands out such batches, one at a time or in blocks."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler


def _permutation(n: int) -> torch.Tensor:
    """A permutation drawn as RandomSampler draws it: a generator seeded from torch's global RNG."""
    g = torch.Generator()
    g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
    return torch.randperm(n, generator=g)


class BatchIndices(Sampler[torch.Tensor]):
    """Batches of window indices as tensors, cut from one permutation per epoch.

    The permutation is never turned into a Python list: 7M windows would be ~250 MB of ints.
    """

    def __init__(self, n: int, size: int, shuffle: bool) -> None:
        self.n, self.size, self.shuffle = n, size, shuffle

    def __len__(self) -> int:
        return -(-self.n // self.size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from (_permutation(self.n) if self.shuffle else torch.arange(self.n)).split(self.size)


class LeanRandomSampler(RandomSampler):
    """RandomSampler's permutation, drawn exactly as RandomSampler draws it, handed out in chunks instead
    of as one Python list (7M windows would be ~250 MB of ints). Still a RandomSampler, so Lightning
    swaps in its DistributedSampler (DDP) or a SequentialSampler (overfit_batches) as it documents."""

    def __iter__(self) -> Iterator[int]:
        if self.replacement or self.num_samples != len(self.data_source) or self.generator is not None:
            yield from super().__iter__()
            return
        for chunk in _permutation(len(self.data_source)).split(1 << 16):
            yield from chunk.tolist()


def _split(block: tuple[torch.Tensor, ...], size: int) -> list[tuple[torch.Tensor, ...]]:
    """A gathered block -> its batches of `size` rows (views, no copy): (x, y) or (x, y, lengths)."""
    return list(zip(*(t.split(size) for t in block), strict=True))


def _as_is(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch  # gathered whole by WindowSet.__getitems__: nothing left to collate


def loader(
    ws: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0, block: int | None = None
) -> DataLoader:
    """Batches gathered in one indexing op each, instead of `batch_size` __getitem__ + collate calls.

    Without `block`: the standard PyTorch form (a RandomSampler or SequentialSampler), so Lightning can
    put in its DistributedSampler, switch shuffling off (overfit_batches) and count batches as it documents.
    With `block`: each item is a list of up to `block` consecutive batches of `batch_size` windows,
    gathered at once. Both give the same batches in the same order: BatchIndices draws its permutation
    exactly as RandomSampler does.
    """
    if block is None:
        return DataLoader(
            ws,
            batch_size=batch_size,
            sampler=LeanRandomSampler(ws) if shuffle else None,  # None: a SequentialSampler
            collate_fn=_as_is,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )
    return DataLoader(
        ws,
        batch_size=None,  # the sampler already yields whole blocks of indices
        sampler=BatchIndices(len(ws), batch_size * block, shuffle),
        collate_fn=partial(_split, size=batch_size),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
