"""A sampler with `trl.trainer.utils.RepeatSampler`'s contract whose prompts DEPO chose.

RepeatSampler (TRL 1.16) yields each generation batch `repeat_count` (= num_iterations x
steps_per_generation) times, and within it each prompt `mini_repeat_count` (= num_generations)
times in a row; GRPOTrainer relies on that layout. `DEPORepeatSampler` keeps it, and its length
(`len(dataset) // batch_size` batches per trainer epoch), and only changes *which* prompts fill
each batch: it asks `next_chunk()` (a `SelectionFeed`) lazily, one generation batch at a time,
over an endless data order (docs/trl.md, "How it plugs in").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch.utils.data import Sampler

from depo.errors import DepoError


class DEPORepeatSampler(Sampler[int]):
    """Yields `chunks_per_epoch` DEPO-chosen generation batches in RepeatSampler's layout."""

    def __init__(
        self,
        next_chunk: Callable[[], list[int]],
        *,
        chunks_per_epoch: int,
        batch_size: int,
        mini_repeat_count: int,
        repeat_count: int = 1,
    ) -> None:
        if chunks_per_epoch < 1:
            raise DepoError(
                f"the training set holds fewer prompts than one generation batch ({batch_size} distinct prompts)"
            )
        self.next_chunk = next_chunk
        self.chunks_per_epoch = int(chunks_per_epoch)
        self.batch_size = int(batch_size)
        self.mini_repeat_count = int(mini_repeat_count)
        self.repeat_count = int(repeat_count)

    def set_epoch(self, epoch: int) -> None:
        """Trainer calls this every epoch; the DEPO data order is a continuous stream, so it changes nothing."""

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.chunks_per_epoch):
            chunk = self.next_chunk()
            if len(chunk) != self.batch_size:
                raise DepoError(f"the DEPO feed returned {len(chunk)} prompts, expected {self.batch_size}")
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return self.chunks_per_epoch * self.batch_size * self.mini_repeat_count * self.repeat_count
